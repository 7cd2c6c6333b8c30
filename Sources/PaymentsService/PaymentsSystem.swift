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

/// A payments system, complete at birth, assembled from a ``PaymentsConfiguration``: the
/// coordinator, the Twilio API (live, or the in-process simulator), the callback receiver and
/// its public URL (explicit, ngrok, or loopback), finished-session expiry and the check of
/// silent calls, on the configured store and change feed.
///
/// ``coordinator`` exists from the start: a host (PaymentsMCP's tools) calls it directly. A
/// command issued before the public URL is known fails at once, retryably, saying the system is
/// still starting (or why it could not start); a request to the in-process simulator before it
/// listens is retried by the client within its budget.
///
/// Each long-running part is a swift-service-lifecycle `Service` (``services``): a host adds
/// them to its own `ServiceGroup`, or runs the system itself as one service (``run()``), which
/// runs them in a group of their own. A host that serves HTTP itself can mount the callback
/// routes in its own Hummingbird application (``CallbackListener/mounted``,
/// ``addCallbackRoutes(to:)``). Shutdown is graceful and in reverse order: the flow's
/// maintenance stops, then the tunnel (its child is stopped and reaped), then the listeners.
/// ``ready(waitingUpTo:)`` says when every part is up, or why one is not.
public final class PaymentsSystem: Service, CustomStringConvertible, Sendable {
    public let configuration: PaymentsConfiguration
    /// The payment flow: made at once, usable once the system is ready.
    public let coordinator: PaymentCoordinator
    /// The callback receiver: its routes, its bound port and public URL.
    public let receiver: CallbackReceiver
    /// The in-process simulator, when the configuration asks for it: start calls on it
    /// (`startCall(_:)`) and its simulated callers type.
    public let simulator: TwilioSimulator?
    /// The long-running parts, in start order (a `ServiceGroup` shuts them down in reverse).
    public let services: [any Service]

    private let logger: Logger
    private let startup: Startup
    private let listening: Announcement<Int>
    private let ran = Mutex(false)

    /// What service-lifecycle logs call it.
    public var description: String { "payments-system" }

    /// Assembles the system; nothing runs until its services do.
    public init(
        configuration: PaymentsConfiguration, logger: Logger = Logger(label: "agent-payments")
    ) throws(PaymentsConfigurationError) {
        self.configuration = configuration
        self.logger = logger

        var host = "127.0.0.1"
        var port = 0
        var limits = ListenerLimits()
        var ownListener = false
        if case .own(let ownHost, let ownPort, let ownLimits) = configuration.callbackListener {
            (host, port, limits, ownListener) = (ownHost, ownPort, ownLimits, true)
        }

        // What must come up before the system is ready.
        var parts: Set<Startup.Part> = []
        let publicBase = PublicBaseURL()
        switch configuration.publicURL {
        case .explicit(let url):
            guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
                ["http", "https"].contains(scheme),
                parsed.host != nil
            else {
                throw .invalidPublicURL(url)
            }
            publicBase.set(url)
        case .ngrok:
            guard ownListener else { throw .publicURLNeedsOwnListener("ngrok") }
            parts.insert(.publicURL)
        case .loopback:
            guard ownListener else { throw .publicURLNeedsOwnListener("loopback") }
            parts.insert(.publicURL)
        case .provided:
            parts.insert(.publicURL)
        }
        if ownListener { parts.insert(.listener) }

        // The Twilio API: live, or the simulator's port once it listens (requests before then
        // fail retryably, and the client retries them within its budget).
        let api: TwilioPaymentsClient
        let authToken: Secret?
        var simulatorRoute: SimulatorRoute?
        switch configuration.twilio {
        case .live(let credentials, let baseURL):
            do {
                api = try TwilioPaymentsClient(credentials: credentials, baseURL: baseURL)
            } catch {
                throw .invalidTwilioBaseURL(baseURL.absoluteString)
            }
            authToken = credentials.authToken
            simulator = nil
            if credentials.authToken == nil {
                logger.warning(
                    "no Auth Token: callbacks are authenticated only by their unguessable per-session URL, not by Twilio's signature"
                )
            }
        case .simulated(let simulatorConfiguration, let scripts):
            let made = TwilioSimulator(configuration: simulatorConfiguration, logger: logger.labelled("simulator"))
            for (call, script) in scripts { made.setScript(script, for: call) }
            simulator = made
            let route = SimulatorRoute()
            simulatorRoute = route
            // Any absolute URL: the route sends each request to the simulator's port.
            api = try! TwilioPaymentsClient(
                credentials: simulatorConfiguration.credentials, baseURL: SimulatorRoute.placeholder, transport: route)
            authToken = simulatorConfiguration.authToken
            parts.insert(.simulator)
        }
        let startup = Startup(waitingFor: parts)
        self.startup = startup

        coordinator = PaymentCoordinator(
            api: api, store: configuration.store, feed: configuration.changeFeed,
            callbackURLs: SystemCallbackURLs(
                publicBase: publicBase, pathPrefix: configuration.callbackPathPrefix, startup: startup),
            callbackKey: configuration.callbackKey, policy: configuration.policy, ledger: configuration.ledger,
            notices: configuration.notices)
        receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(
                host: host, port: port, pathPrefix: configuration.callbackPathPrefix, authToken: authToken,
                limits: limits),
            sink: CoordinatorSink(coordinator: coordinator), publicBase: publicBase,
            logger: logger.labelled("callbacks"))

        var services: [any Service] = []
        if let simulator, let simulatorRoute {
            services.append(
                SimulatorService(simulator: simulator, route: simulatorRoute, startup: startup, logger: logger))
        }
        let listening = Announcement<Int>()
        self.listening = listening
        if ownListener {
            var loopback = false
            if case .loopback = configuration.publicURL { loopback = true }
            services.append(
                CallbackServerService(
                    receiver: receiver, listening: listening, loopbackPublicURL: loopback, startup: startup,
                    additionalRoutes: configuration.additionalRoutes))
        }
        if case .ngrok(let token, let domain, let executable, let environment) = configuration.publicURL {
            services.append(
                TunnelService(
                    configuration: NgrokConfiguration(
                        executable: executable, authToken: token, domain: domain, port: 0, environment: environment),
                    receiver: receiver, listening: listening, startup: startup, logger: logger.labelled("ngrok")))
        }
        services.append(
            MaintenanceService(
                configuration: configuration, coordinator: coordinator, receiver: receiver, startup: startup,
                logger: logger))
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
            startup.fail(.stopped)
            listening.fail(.failed(startup.failure ?? .stopped))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger))
        try await group.run()
    }

    /// The coordinator once every part is up, or why it is not: a part failed to start
    /// (``PaymentsStartError``), or `timeout` passed (`nil`).
    public func ready(waitingUpTo timeout: Duration) async throws(PaymentsStartError) -> PaymentCoordinator? {
        switch await startup.done.wait(upTo: timeout) {
        case .success: return coordinator
        case .failure(.notYet), .failure(.cancelled): return nil
        case .failure(.failed(let error)): throw error
        }
    }

    /// The port the system's own callback server listens on, once it does; `nil` if `timeout`
    /// passed first. Throws why it will not listen (a busy port; a mounted configuration:
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
        guard receiver.publicBase.setIfUnset(url) else { return }
        startup.reached(.publicURL)
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

/// Hands callbacks to the coordinator.
struct CoordinatorSink: CallbackSink {
    let coordinator: PaymentCoordinator

    /// Asked only before a refusal (the delivery itself finds the session by the secret's hash
    /// and says 404 when there is none).
    func knows(secret: String) async throws -> Bool {
        try await coordinator.knowsCallbackSecret(secret)
    }

    func deliver(secret: String, callback: PaymentStatusCallback) async throws -> Bool {
        try await coordinator.receiveCallback(secret: secret, callback)
    }
}

/// Callback URLs from the public base URL, once known; before then, why not: still starting, or
/// the part that failed.
struct SystemCallbackURLs: CallbackURLProvider {
    let publicBase: PublicBaseURL
    let pathPrefix: String
    let startup: Startup

    func callbackURL(secret: String) throws -> String {
        if let base = publicBase.value {
            return CallbackReceiver.callbackURL(base: base, pathPrefix: pathPrefix, secret: secret)
        }
        if let failure = startup.failure {
            throw SystemNotReady("the payment system could not start: \(failure)")
        }
        throw SystemNotReady("the payment system is still starting; try again in a moment")
    }
}

/// Why the system cannot take a payment now.
struct SystemNotReady: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
