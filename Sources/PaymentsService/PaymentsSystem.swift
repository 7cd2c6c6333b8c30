public import CallbackHTTP
import Foundation
import ListenerGuard
public import Hummingbird
public import Logging
public import PaymentFlow
public import ServiceLifecycle
import Synchronization
import TwilioPayments
public import TwilioSimulator

/// A running payments system, assembled from a ``PaymentsConfiguration``: the coordinator, the
/// Twilio API (live, or the in-process simulator), the callback receiver and its public URL
/// (explicit, ngrok, or loopback), finished-session expiry and the check of silent calls, on
/// the configured store and change feed.
///
/// Each long-running part is a swift-service-lifecycle `Service` (``services``): a host adds
/// them to its own `ServiceGroup`, or runs the system itself as one service (``run()``), which
/// runs them in a group of their own. A host that serves HTTP itself can mount the callback
/// routes in its own Hummingbird application (``CallbackListener/mounted``,
/// ``addCallbackRoutes(to:)``). Shutdown is graceful and in reverse order: the flow's
/// maintenance stops, then the tunnel (its child is stopped and reaped), then the listeners.
///
/// The coordinator exists once the parts it needs are up; ``coordinator(waitingUpTo:)`` waits
/// for that (it is what MCP tools wait on), ``ready(waitingUpTo:)`` says why not.
public final class PaymentsSystem: Service, PaymentCoordinatorSource, CustomStringConvertible, Sendable {
    public let configuration: PaymentsConfiguration
    /// The callback receiver: its routes, its bound port and public URL.
    public let receiver: CallbackReceiver
    /// The in-process simulator, when the configuration asks for it: start calls on it
    /// (`startCall(_:)`) and its simulated callers type.
    public let simulator: TwilioSimulator?
    /// The long-running parts, in start order (a `ServiceGroup` shuts them down in reverse).
    public let services: [any Service]

    private let logger: Logger
    private let sink: LateCoordinatorSink
    private let readiness = Announcement<PaymentCoordinator>()
    private let apiBase = Announcement<URL>()
    private let listening = Announcement<Int>()
    private let publicBase = Announcement<String>()
    private let ran = Mutex(false)

    /// What service-lifecycle logs call it.
    public var description: String { "payments-system" }

    /// Assembles the system; nothing runs until its services do.
    public init(
        configuration: PaymentsConfiguration, logger: Logger = Logger(label: "agent-payments")
    ) throws(PaymentsConfigurationError) {
        self.configuration = configuration
        self.logger = logger
        let sink = LateCoordinatorSink()
        self.sink = sink

        var host = "127.0.0.1", port = 0, limits = ListenerLimits()
        if case .own(let ownHost, let ownPort, let ownLimits) = configuration.callbackListener {
            (host, port, limits) = (ownHost, ownPort, ownLimits)
        }
        let authToken: Secret?
        switch configuration.twilio {
        case .live(let credentials, _): authToken = credentials.authToken
        case .simulated(let simulator, _): authToken = simulator.authToken
        }
        receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(
                host: host, port: port, pathPrefix: configuration.callbackPathPrefix,
                authToken: authToken, limits: limits),
            sink: sink, logger: logger.labelled("callbacks"))

        var services: [any Service] = []
        switch configuration.twilio {
        case .live(let credentials, let baseURL):
            guard (try? TwilioPaymentsClient(credentials: credentials, baseURL: baseURL)) != nil else {
                throw .invalidTwilioBaseURL(baseURL.absoluteString)
            }
            simulator = nil
            apiBase.announce(baseURL)
        case .simulated(let simulatorConfiguration, let scripts):
            let simulator = TwilioSimulator(configuration: simulatorConfiguration, logger: logger.labelled("simulator"))
            for (call, script) in scripts { simulator.setScript(script, for: call) }
            self.simulator = simulator
            services.append(SimulatorService(simulator: simulator, announcement: apiBase))
        }

        let ownListener: Bool
        if case .own = configuration.callbackListener { ownListener = true } else { ownListener = false }
        switch configuration.publicURL {
        case .explicit(let url):
            guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
                ["http", "https"].contains(scheme), parsed.host != nil
            else {
                throw .invalidPublicURL(url)
            }
            receiver.setPublicBaseURL(url)
            publicBase.announce(url)
        case .ngrok(let token, let domain, let executable, let environment):
            guard ownListener else { throw .publicURLNeedsOwnListener("ngrok") }
            services.append(
                CallbackServerService(
                    receiver: receiver, listening: listening, additionalRoutes: configuration.additionalRoutes))
            services.append(
                TunnelService(
                    configuration: NgrokConfiguration(
                        executable: executable, authToken: token, domain: domain, port: 0,
                        environment: environment),
                    receiver: receiver, listening: listening, publicBase: publicBase, logger: logger.labelled("ngrok")))
        case .loopback:
            guard ownListener else { throw .publicURLNeedsOwnListener("loopback") }
        case .provided:
            break
        }
        if ownListener, !services.contains(where: { $0 is CallbackServerService }) {
            services.append(
                CallbackServerService(
                    receiver: receiver, listening: listening,
                    loopbackURL: { if case .loopback = configuration.publicURL { true } else { false } }()
                        ? publicBase : nil,
                    additionalRoutes: configuration.additionalRoutes))
        }
        services.append(
            FlowService(
                configuration: configuration, receiver: receiver, sink: sink, apiBase: apiBase, publicBase: publicBase,
                readiness: readiness, logger: logger))
        self.services = services
    }

    /// Runs every part in a group of its own until a graceful shutdown (or cancellation), and
    /// ends readiness with the reason if it never came: the first part that failed to start,
    /// else ``PaymentsStartError/stopped``. A system runs once; a second run throws
    /// ``PaymentsStartError/alreadyRun``.
    public func run() async throws {
        guard
            ran.withLock({ ran in
                defer { ran = true }
                return !ran
            })
        else { throw PaymentsStartError.alreadyRun }
        defer {
            let reason =
                [apiBase.startFailure, listening.startFailure, publicBase.startFailure].compactMap { $0 }.first
                ?? .stopped
            readiness.fail(.failed(reason))
            // Whatever still waits for a part that will not come now hears why.
            listening.fail(.failed(reason))
            apiBase.fail(.failed(reason))
            publicBase.fail(.failed(reason))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger))
        try await group.run()
    }

    /// The coordinator, once ready; what MCP tools and other hosts' requests wait on.
    public func coordinator(waitingUpTo timeout: Duration) async throws(FlowError) -> PaymentCoordinator {
        switch await readiness.wait(upTo: timeout) {
        case .success(let coordinator): return coordinator
        case .failure(.notYet):
            throw .callbackUnavailable("the payment system is still starting; try again in a moment")
        case .failure(.cancelled):
            throw .callbackUnavailable("the request was cancelled while the payment system was starting")
        case .failure(.failed(let error)): throw .callbackUnavailable("the payment system could not start: \(error)")
        }
    }

    /// The coordinator once every part is up, or why it is not: a part failed to start
    /// (``PaymentsStartError``), or `timeout` passed (`nil`).
    public func ready(waitingUpTo timeout: Duration) async throws(PaymentsStartError) -> PaymentCoordinator? {
        switch await readiness.wait(upTo: timeout) {
        case .success(let coordinator): return coordinator
        case .failure(.notYet), .failure(.cancelled): return nil
        case .failure(.failed(let error)): throw error
        }
    }

    /// The port the system's own callback server listens on, once it does; `nil` if `timeout`
    /// passed first. Throws why it will not listen (a busy port, a mounted configuration:
    /// ``PaymentsStartError/stopped``).
    public func callbackListenerPort(waitingUpTo timeout: Duration) async throws(PaymentsStartError) -> Int? {
        guard case .own = configuration.callbackListener else { throw .stopped }
        switch await listening.wait(upTo: timeout) {
        case .success(let port): return port
        case .failure(.notYet), .failure(.cancelled): return nil
        case .failure(.failed(let error)): throw error
        }
    }

    /// Mounts the callback routes in a host's own Hummingbird router (with
    /// ``PaymentsConfiguration/CallbackListener/mounted``). See ``CallbackReceiver/addRoutes(to:)``.
    public func addCallbackRoutes<Context: RequestContext>(to router: Router<Context>) {
        receiver.addRoutes(to: router)
    }

    /// The public base URL Twilio calls, for ``PaymentsConfiguration/PublicURL/provided``:
    /// typically from the host's own `onServerRunning`. Later calls are ignored.
    public func setPublicBaseURL(_ url: String) {
        guard publicBase.value == nil else { return }
        receiver.setPublicBaseURL(url)
        publicBase.announce(url)
    }
}

extension Logger {
    /// The same logger (handler, level, metadata) under a sub-label, so a host's log setup
    /// reaches every part.
    func labelled(_ part: String) -> Logger {
        var copy = self
        copy[metadataKey: "part"] = "\(part)"
        return copy
    }
}

/// Hands callbacks to the coordinator, which is made after the receiver (the receiver must
/// listen before the public URL, and so the coordinator, exists). Until then no secret is known.
final class LateCoordinatorSink: CallbackSink {
    private let coordinator = Mutex<PaymentCoordinator?>(nil)

    func attach(_ coordinator: PaymentCoordinator) { self.coordinator.withLock { $0 = coordinator } }

    /// Asked only before a refusal (the delivery itself finds the session by the secret's hash
    /// and says 404 when there is none).
    func knows(secret: String) async throws -> Bool {
        guard let coordinator = coordinator.withLock({ $0 }) else { return false }
        return try await coordinator.knowsCallbackSecret(secret)
    }

    func deliver(secret: String, callback: PaymentStatusCallback) async throws -> Bool {
        guard let coordinator = coordinator.withLock({ $0 }) else { return false }
        return try await coordinator.receiveCallback(secret: secret, callback)
    }
}

/// The receiver as the coordinator's source of StatusCallback URLs.
struct ReceiverCallbackURLs: CallbackURLProvider {
    let receiver: CallbackReceiver

    func callbackURL(secret: String) throws -> String {
        try receiver.callbackURL(secret: secret)
    }
}
