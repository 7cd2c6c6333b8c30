import ArgumentParser
import ListenerGuard
import CallbackHTTP
import Dispatch
import Foundation
import Hummingbird
import Logging
import MCPCore
import PaymentFlow
import PaymentsMCP
import Synchronization
import TwilioPayments
import TwilioSimulator

@main
struct AgentPayments: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "agent-payments",
        abstract: "An MCP server that lets an AI agent take a card or bank payment on a live Twilio call without seeing the card.",
        discussion: """
            Run it from an MCP client (Claude Desktop, your own agent host) over stdio:

              agent-payments <accountSid> <apiKey> <apiSecret>      live, with a Twilio API key
              agent-payments --simulate                             against the built-in Twilio simulator
              agent-payments demo                                   a complete simulated payment, printed step by step

            Environment:
              TWILIO_ACCOUNT_SID, TWILIO_API_KEY, TWILIO_API_SECRET   credentials instead of arguments (kept out of ps)
              TWILIO_AUTH_TOKEN      validates X-Twilio-Signature on callbacks (strongly recommended)
              TWILIO_API_BASE_URL    Twilio API base URL (regional edges, stand-ins); default https://api.twilio.com
              TOKEN_TYPE, CURRENCY, PAYMENT_CONNECTOR                  defaults for startPaymentCapture
              CALLBACK_BASE_URL      public https URL that reaches the callback port
              NGROK_AUTH_TOKEN, NGROK_CUSTOM_DOMAIN                    open an ngrok tunnel instead
              CALLBACK_HOST, CALLBACK_PORT                             callback server address (default 127.0.0.1, a free port)
              AGENT_PAYMENTS_LOG_LEVEL                                 trace, debug, info (default), notice, warning, error
            """,
        version: version,
        subcommands: [Serve.self, Demo.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve MCP over stdio (the default).")

    @Argument(help: "Account SID (AC…), API key SID (SK…) and API secret. Or set TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET.")
    var credentials: [String] = []

    @Flag(help: "Run against the built-in Twilio simulator: no account, no tunnel.")
    var simulate = false

    func validate() throws {
        _ = try ServerConfiguration.load(positional: credentials, simulate: simulate, environment: ProcessInfo.processInfo.environment)
    }

    func run() async throws {
        // Every open connection costs a file: take what the system allows before sizing the
        // listener's connection cap from it.
        let files = FileDescriptorLimit.raiseSoftLimitToHard()
        let configuration = try ServerConfiguration.load(positional: credentials, simulate: simulate, environment: ProcessInfo.processInfo.environment)
        let server = PaymentsMCP.makeServer(version: AgentPayments.version)
        let redactor = Redactor(secrets: configuration.secrets)
        let level = ProcessInfo.processInfo.environment["AGENT_PAYMENTS_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in MCPLogHandler(label: label, server: server, redactor: redactor, level: level) }
        let logger = Logger(label: "agent-payments")
        logger.info("open-file limit", metadata: ["files.before": "\(files.before)", "files.now": "\(files.after)",
                                                  "callbacks.maxConnections": "\(configuration.limits.maximumConnections)"])
        let ready = Eventually<PaymentCoordinator>()
        PaymentsMCP(server: server, coordinator: ready, defaults: configuration.defaults, redactor: redactor).install()

        let runtime = Runtime()
        // SIGTERM and SIGINT stop gracefully: listen streams end with their result, queued
        // messages are written, then the tunnel is stopped and the process exits.
        runtime.installSignalHandlers { server.stop() }
        // MCP answers at once; the callback server, simulator and tunnel come up meanwhile.
        Task { await Backend.start(configuration, ready: ready, runtime: runtime, logger: logger) }
        await server.serveStdio()
        await runtime.shutdown()
    }
}

/// What must be stopped on the way out.
final class Runtime: Sendable {
    private let tasks = Mutex<[Task<Void, any Error>]>([])
    private let tunnel = Mutex<NgrokTunnel?>(nil)

    func keep(_ task: Task<Void, any Error>) { tasks.withLock { $0.append(task) } }

    func keep(_ tunnel: NgrokTunnel) { self.tunnel.withLock { $0 = tunnel } }

    /// Stops the tunnel child (so no tunnel is orphaned) and leaves: stdout's queue was flushed
    /// when serving ended (end of input, or a graceful stop).
    func shutdown() async -> Never {
        if let tunnel = tunnel.withLock({ $0 }) { await tunnel.stop() }
        for task in tasks.withLock({ $0 }) { task.cancel() }
        exit(0)
    }

    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    func installSignalHandlers(_ stop: @escaping @Sendable () -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop() }
            source.resume()
            // Dispatch sources are not Sendable; they are written once, here, before any signal.
            Runtime.signalSources.append(source)
        }
    }
}

/// Hands callbacks to the coordinator, which is created after the receiver.
final class CoordinatorSink: CallbackSink {
    let coordinator = Mutex<PaymentCoordinator?>(nil)

    func knows(secret: String) async -> Bool {
        guard let coordinator = coordinator.withLock({ $0 }) else { return false }
        return await coordinator.knowsCallbackSecret(secret)
    }

    func deliver(secret: String, callback: PaymentStatusCallback) async -> Bool {
        guard let coordinator = coordinator.withLock({ $0 }) else { return false }
        return await coordinator.receiveCallback(secret: secret, callback)
    }
}

/// The receiver as the coordinator's source of StatusCallback URLs.
struct ReceiverURLs: CallbackURLProvider {
    let receiver: CallbackReceiver

    func callbackURL(secret: String) throws -> String {
        try receiver.callbackURL(secret: secret)
    }
}

enum Backend {
    static func start(_ configuration: ServerConfiguration, ready: Eventually<PaymentCoordinator>, runtime: Runtime, logger: Logger) async {
        do {
            let sink = CoordinatorSink()
            let api: any TwilioPaymentsAPI
            let receiver: CallbackReceiver
            switch configuration.mode {
            case .simulate:
                let pacing = ProcessInfo.processInfo.environment["AGENT_PAYMENTS_SIMULATOR_PACING_MS"].flatMap(Int.init) ?? 150
                var simulatorConfiguration = TwilioSimulator.Configuration.offline(digitPacing: .milliseconds(pacing))
                simulatorConfiguration.callbackHistoryLimit = 0  // nobody reads it in the server
                let simulator = TwilioSimulator(configuration: simulatorConfiguration, logger: Logger(label: "twilio-simulator"))
                if let path = ProcessInfo.processInfo.environment["AGENT_PAYMENTS_SIMULATOR_SCRIPT"] {
                    for (call, script) in try SimulatorScripts.load(path: path) { simulator.setScript(script, for: call) }
                }
                let port = Mutex<Int?>(nil)
                let app = simulator.makeApplication { bound in port.withLock { $0 = bound } }
                let failure = launch(app, runtime: runtime)
                let simulatorPort = try await waitFor(failure: failure) { port.withLock { $0 } }
                receiver = CallbackReceiver(configuration: CallbackReceiverConfiguration(host: configuration.callbackHost, port: configuration.callbackPort,
                                                                                         authToken: simulatorConfiguration.authToken,
                                                                                         limits: configuration.limits),
                                            sink: sink, logger: Logger(label: "agent-payments.callbacks"))
                try await run(receiver, runtime: runtime)
                api = try TwilioPaymentsClient(credentials: simulatorConfiguration.credentials,
                                               baseURL: URL(string: "http://127.0.0.1:\(simulatorPort)")!)
                logger.info("running against the built-in Twilio simulator", metadata: ["simulator.port": "\(simulatorPort)"])
            case .live(let credentials, let apiBaseURL, let publicURL):
                receiver = CallbackReceiver(configuration: CallbackReceiverConfiguration(host: configuration.callbackHost, port: configuration.callbackPort,
                                                                                         authToken: credentials.authToken,
                                                                                         limits: configuration.limits),
                                            sink: sink, logger: Logger(label: "agent-payments.callbacks"))
                try await run(receiver, runtime: runtime)
                switch publicURL {
                case .explicit(let url):
                    receiver.setPublicBaseURL(url)
                case .ngrok(let token, let domain):
                    let tunnel = try await NgrokTunnel.start(NgrokConfiguration(authToken: token, domain: domain, port: receiver.boundPort!))
                    runtime.keep(tunnel)
                    receiver.setPublicBaseURL(tunnel.publicURL)
                }
                if credentials.authToken == nil {
                    logger.warning("TWILIO_AUTH_TOKEN is not set: callbacks are authenticated only by their unguessable per-session URL, not by Twilio's signature")
                }
                api = try TwilioPaymentsClient(credentials: credentials, baseURL: apiBaseURL)
            }
            let coordinator = PaymentCoordinator(api: api, callbackURLs: ReceiverURLs(receiver: receiver))
            sink.coordinator.withLock { $0 = coordinator }
            await ready.resolve(coordinator)
            // Finished sessions stay readable for an hour, then go, and their callback URLs with them.
            runtime.keep(Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(300))
                    let expired = await coordinator.expireFinished(retention: .seconds(3600))
                    if expired > 0 { logger.debug("expired finished payment sessions", metadata: ["count": "\(expired)"]) }
                }
            })
            // A caller who hangs up while nothing is being captured may send no callback: every
            // 10 s, the calls of sessions silent for 30 s are checked with Twilio.
            runtime.keep(Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(10))
                    let ended = await coordinator.checkSilentCalls(silentFor: .seconds(30))
                    if ended > 0 { logger.info("payment sessions ended because their call is over", metadata: ["count": "\(ended)"]) }
                }
            })
            logger.info("callback server ready", metadata: ["callbacks.public": "\(receiver.publicBaseURL ?? "?")",
                                                           "callbacks.port": "\(receiver.boundPort ?? 0)"])
        } catch {
            logger.error("the payment backend could not start: \(error)")
            await ready.fail(.callbackUnavailable(String(describing: error)))
        }
    }

    private static func run(_ receiver: CallbackReceiver, runtime: Runtime) async throws {
        let failure = launch(receiver.makeApplication(), runtime: runtime)
        _ = try await waitFor(failure: failure) { receiver.boundPort }
    }

    /// Runs `app` until shutdown; a failure to start (a busy port, say) is recorded so the
    /// wait below can report it instead of timing out.
    private static func launch(_ app: some ApplicationProtocol, runtime: Runtime) -> StartFailure {
        let failure = StartFailure()
        runtime.keep(Task {
            do {
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                failure.set(String(describing: error))
                throw error
            }
        })
        return failure
    }

    private static func waitFor<T>(failure: StartFailure, _ value: () -> T?) async throws -> T {
        for _ in 0..<1000 {
            if let value = value() { return value }
            if let reason = failure.get() { throw PublicURLError(description: "a local server could not start: \(reason)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw PublicURLError(description: "a local server did not start within 5 seconds")
    }
}

/// Why a local server failed to start, written by its task and read by the start-up wait.
final class StartFailure: Sendable {
    private let reason = Mutex<String?>(nil)
    func set(_ text: String) { reason.withLock { $0 = text } }
    func get() -> String? { reason.withLock { $0 } }
}
