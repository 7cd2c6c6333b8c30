public import CallbackHTTP
import Foundation
public import NIOCore
public import Hummingbird
public import Logging
public import PaymentFlow
public import ServiceLifecycle
import Synchronization
import TwilioPayments
public import TwilioSimulator

/// A payments system, complete at birth, assembled from a ``PaymentsConfiguration``: the
/// coordinator, the Twilio API (live, or the in-process simulator), the callback routes and
/// their public URL (explicit, ngrok, loopback, or provided), finished-session expiry and the
/// check of silent calls, on the configured store and change feed.
///
/// ``coordinator`` exists from the start: a host (PaymentsMCP's tools) calls it directly. A
/// command issued before the public URL is known fails at once, retryably, saying the system is
/// still starting (or why it could not start); a request to the in-process simulator before it
/// listens is retried by the client within its budget.
///
/// The system runs no HTTP server: the host's one Hummingbird application serves its callback
/// routes (``callbackRoutes(context:)``) beside the host's own, tells the system it listens
/// (`onServerRunning:` ``serverRunning(_:)``), and runs as a ``CallbackServer`` so that a
/// failure to listen becomes the system's start failure. Each long-running part is a
/// swift-service-lifecycle `Service` (``services``: the simulator, the tunnel, the flow's
/// maintenance and change feed): a host adds them to its own `ServiceGroup`, or runs the system
/// itself as one service (``run()``), which runs them in a group of their own. Shutdown is
/// graceful and in reverse order: the flow's maintenance stops, then the tunnel (its child is
/// stopped and reaped), then the simulator. ``ready(waitingUpTo:)`` says when every part is up,
/// or why one is not.
public final class PaymentsSystem: Service, CustomStringConvertible, Sendable {
    public let configuration: PaymentsConfiguration
    /// The payment flow: made at once, usable once the system is ready.
    public let coordinator: PaymentCoordinator
    /// The callback receiver: its routes and checks, and the public URL.
    public let receiver: CallbackReceiver
    /// The in-process simulator, when the configuration asks for it: start calls on it
    /// (`startCall(_:)`) and its simulated callers type.
    public let simulator: TwilioSimulator?
    /// The long-running parts, in start order (a `ServiceGroup` shuts them down in reverse).
    public let services: [any Service & CustomStringConvertible]

    private let logger: Logger
    let startup: Startup
    /// The store's last answer to a readiness probe (``readiness(storeTimeout:reusingFor:)``).
    let storeProbe = StoreProbe()
    private let boundPort: Announcement<Int>
    private let ran = Mutex(false)

    /// What service-lifecycle logs call it.
    public var description: String { "payments-system" }

    /// Assembles the system; nothing runs until its services do.
    public init(
        configuration: PaymentsConfiguration, logger: Logger = Logger(label: "agent-payments")
    ) throws(PaymentsConfigurationError) {
        self.configuration = configuration
        self.logger = logger

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
            guard configuration.waitsForListener else { throw .publicURLNeedsListener("ngrok") }
            parts.insert(.publicURL)
        case .loopback:
            guard configuration.waitsForListener else { throw .publicURLNeedsListener("loopback") }
            parts.insert(.publicURL)
        case .provided:
            parts.insert(.publicURL)
        }
        if configuration.waitsForListener { parts.insert(.listener) }

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
        case .simulated(var simulatorConfiguration, let scripts):
            // Pausing recordings needs calls that are recorded: the simulated ones are, then.
            if configuration.pauseRecordings != .off { simulatorConfiguration.recordsCalls = true }
            let made = TwilioSimulator(configuration: simulatorConfiguration, logger: logger.labelled("simulator"))
            for (call, script) in scripts { made.setScript(script, for: call) }
            simulator = made
            let route = SimulatorRoute()
            simulatorRoute = route
            // Any absolute URL: the route sends each request to the simulator's port.
            // The host it plays (a region's), or any: the client's requests name it either way.
            let base =
                simulatorConfiguration.host.flatMap { URL(string: "https://\($0)") } ?? SimulatorRoute.placeholder
            api = try! TwilioPaymentsClient(
                credentials: simulatorConfiguration.credentials, baseURL: base, transport: route)
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
            notices: configuration.notices, audit: configuration.audit, replica: configuration.replica,
            strandedAfter: configuration.strandedStartAfter,
            recordingPausing: configuration.pauseRecordings == .off
                ? nil
                : RecordingPausing(api: api, required: configuration.pauseRecordings == .required) {
                    [logger] reason, session in
                    logger.warning(
                        "\(reason)",
                        metadata: [
                            "call": "\(session.callSID)", "payment": "\(session.paymentSID.map(\.rawValue) ?? "-")",
                        ])
                })
        receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(
                pathPrefix: configuration.callbackPathPrefix, authToken: authToken,
                onRefusal: configuration.audit.map { Self.recordRefusals(in: $0, replica: configuration.replica) }),
            sink: CoordinatorSink(coordinator: coordinator), publicBase: publicBase,
            logger: logger.labelled("callbacks"))

        var services: [any Service & CustomStringConvertible] = []
        if let simulator, let simulatorRoute {
            services.append(
                SimulatorService(simulator: simulator, route: simulatorRoute, startup: startup, logger: logger))
        }
        let boundPort = Announcement<Int>()
        self.boundPort = boundPort
        if case .ngrok(let token, let domain, let executable, let environment) = configuration.publicURL {
            services.append(
                TunnelService(
                    configuration: NgrokConfiguration(
                        executable: executable, authToken: token, domain: domain, port: 0, environment: environment),
                    receiver: receiver, listening: boundPort, startup: startup, logger: logger.labelled("ngrok")))
        }
        services.append(
            MaintenanceService(
                configuration: configuration, coordinator: coordinator, receiver: receiver, listening: boundPort,
                startup: startup, logger: logger))
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
            boundPort.fail(.failed(startup.failure ?? .stopped))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { .named($0) }, logger: logger))
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

    /// The callback routes (`POST <prefix>/:secret`), for the host's router:
    /// `router.addRoutes(system.callbackRoutes(context: Context.self))`. See
    /// ``CallbackReceiver/routes(context:)``. The listener that serves them faces the internet
    /// (through a tunnel or a proxy): bound it with `HTTPServerBuilder.guardedHTTP1(limits:logger:)`.
    public func callbackRoutes<Context: RequestContext>(
        context: Context.Type = BasicRequestContext.self
    ) -> RouteCollection<Context> {
        receiver.routes(context: context)
    }

    /// What the host's application calls once its listener runs (Hummingbird's
    /// `onServerRunning:`): its bound port makes a loopback public URL, or is where the tunnel
    /// leads, and readiness no longer waits for it.
    public func serverRunning(_ channel: any Channel) async {
        listening(onPort: channel.localAddress?.port ?? 0)
    }

    /// ``serverRunning(_:)`` for a host that knows its port otherwise.
    public func listening(onPort port: Int) {
        if case .loopback = configuration.publicURL, receiver.publicBase.setIfUnset("http://127.0.0.1:\(port)") {
            startup.reached(.publicURL)
        }
        boundPort.announce(port)
        startup.reached(.listener)
    }

    /// The host's listener could not listen (``PaymentsStartError/callbackListenerFailed(host:port:reason:)``):
    /// the system's start fails with why, which tools then say (``CallbackServer`` reports it).
    public func listenerFailed(_ failure: PaymentsStartError) {
        boundPort.fail(.failed(failure))
        startup.fail(failure)
    }

    /// Runs a step the host's listener must wait for, from its application's
    /// `beforeServerStarts` (a database's migrations): a failure becomes the system's start
    /// failure (``PaymentsStartError/preparationFailed(reason:)``, which tools say) and is
    /// rethrown as it is, so that the application does not start.
    public func preparing(_ step: () async throws -> Void) async throws {
        do {
            try await step()
        } catch {
            let failure = PaymentsStartError.preparationFailed(reason: String(describing: error))
            boundPort.fail(.failed(failure))
            startup.fail(failure)
            throw error
        }
    }

    /// Why the system could not start, once that is known.
    var startFailure: PaymentsStartError? { startup.failure }

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

extension PaymentsSystem {
    /// What records refused callbacks in `audit` (``AuditAction/callbackRefused``, by `unknown`:
    /// a refused sender is not known to be Twilio).
    static func recordRefusals(
        in audit: any AuditTrail, replica: String
    ) -> @Sendable (RefusedCallback) async -> Void {
        { refusal in
            await audit.record(
                AuditEntry(
                    replica: replica, actor: "unknown", action: AuditAction.callbackRefused.rawValue,
                    outcome: "refused: \(refusal.reason) (\(refusal.status))", origin: refusal.origin,
                    detail: refusal.unreported > 0 ? "\(refusal.unreported) more refused before, not recorded" : nil))
        }
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
