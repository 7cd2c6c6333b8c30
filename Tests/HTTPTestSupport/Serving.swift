import Logging
public import ServiceLifecycle

/// Runs `services` (Hummingbird applications, say) for the duration of `body`, then shuts them
/// down gracefully and waits for them: a listener closes first, so every connection it accepted
/// is served or closed, and what is still open after `grace` is cancelled. Cancelling a server
/// outright while an accepted connection waits to be served traps in NIO ("Deinited
/// NIOAsyncWriter without calling finish()", apple/swift-nio#3481): it crashed this suite.
public func withServing<T: Sendable>(
    _ services: [any Service], grace: Duration = .seconds(2), _ body: () async throws -> T
) async throws -> T {
    var quiet = Logger(label: "test-servers")
    quiet.logLevel = .critical
    var configuration = ServiceGroupConfiguration(
        services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], logger: quiet)
    configuration.maximumGracefulShutdownDuration = grace
    let group = ServiceGroup(configuration: configuration)
    let running = Task { try await group.run() }
    do {
        let value = try await body()
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        return value
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        throw error
    }
}
