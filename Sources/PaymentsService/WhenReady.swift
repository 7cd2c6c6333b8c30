public import ServiceLifecycle

/// Runs a host's action once the system is ready (never, if it does not become ready), then
/// waits for shutdown: what a host does when payments can be taken, such as announcing a
/// tunnel's public URL. Made by ``PaymentsSystem/whenReady(_:)``.
struct WhenReady: Service, CustomStringConvertible {
    var description: String { "when-ready" }
    let system: PaymentsSystem
    let action: @Sendable (PaymentsSystem) async -> Void

    func run() async throws {
        let coordinator = try? await cancelWhenGracefulShutdown {
            try await system.ready(waitingUpTo: .seconds(365 * 86_400))
        }
        if coordinator != nil { await action(system) }
        try? await gracefulShutdown() // a service that ends early would end the group
    }
}

extension PaymentsSystem {
    /// A service that runs `action` once the system is ready, for the host's `ServiceGroup`
    /// (place it after the system).
    public func whenReady(
        _ action: @escaping @Sendable (PaymentsSystem) async -> Void
    ) -> some Service & CustomStringConvertible {
        WhenReady(system: self, action: action)
    }
}
