public import Hummingbird
public import ServiceLifecycle

/// The host's application that serves the system's callback routes, as a `Service`: a failure
/// to listen becomes the system's start failure (tools say why: "could not listen on
/// host:port"), then ends this service with that error (``PaymentsStartError``); a failed step
/// before the server starts (``PaymentsSystem/preparing(_:)``) ends it with that step's own
/// error. The application must tell the system when it runs (`onServerRunning:
/// system.serverRunning`).
public struct CallbackServer<App: ApplicationProtocol>: Service, CustomStringConvertible {
    public var description: String { "http-server" }
    let makeApp: @Sendable () -> App
    let system: PaymentsSystem
    let host: String
    let port: Int

    /// `app`, listening on `host`:`port` (named in the failure), for `system`.
    public init(_ app: App, system: PaymentsSystem, host: String, port: Int) where App: Sendable {
        self.init(system: system, host: host, port: port) { app }
    }

    /// The application `makeApp` builds when the service runs, listening on `host`:`port`
    /// (named in the failure), for `system`: building a router and its routes then happens
    /// beside the host's other services (MCP over stdio answers its first request meanwhile)
    /// instead of before any of them.
    public init(system: PaymentsSystem, host: String, port: Int, _ makeApp: @escaping @Sendable () -> App) {
        self.makeApp = makeApp
        self.system = system
        self.host = host
        self.port = port
    }

    public func run() async throws {
        do {
            try await makeApp().run()
        } catch {
            if case .preparationFailed? = system.startFailure { throw error }
            let failure = PaymentsStartError.callbackListenerFailed(
                host: host, port: port, reason: String(describing: error))
            system.listenerFailed(failure)
            throw failure
        }
    }
}
