import ArgumentParser
import Dispatch
import Foundation
// Stands in for libcurl until the first request loads it (Package.swift, serverLinking).
import LazyCurl
import ListenerGuard
import Logging
import MCPCore
import PaymentsMCP
import PaymentsService
import PaymentEvents
import PaymentFlow
import PaymentsSettings
import ServiceLifecycle
import Synchronization

struct AgentPayments: AsyncParsableCommand {
    static let version = "0.1.0"

    /// The way MCP clients start the server — no arguments, `--simulate`, or the three
    /// credentials — with a valid configuration, goes straight to serving: ArgumentParser's
    /// reflection costs ~3 ms of a cold start (Docs/benchmarks.md). Everything else, and every
    /// configuration error (whose message and usage status ArgumentParser prints), takes the
    /// parser's path.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let direct =
            arguments.isEmpty || arguments == ["--simulate"]
            || (arguments.count == 3
                && !arguments.contains {
                    $0.hasPrefix("-") || ["serve", "demo", "migrate", "webhooks", "help"].contains($0)
                })
        if direct,
            let configuration = try? ServeOptions.load(
                credentials: arguments == ["--simulate"] ? [] : arguments, simulate: arguments == ["--simulate"])
        {
            do {
                try await Serve.serve(configuration)
            } catch {
                exit(withError: error)
            }
            return
        }
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "agent-payments",
        abstract:
            "An MCP server that lets an AI agent take a card or bank payment on a live Twilio call without seeing the card.",
        discussion: """
            Run it from an MCP client (Claude Desktop, your own agent host) over stdio:

              agent-payments <accountSid> <apiKey> <apiSecret>      live, with a Twilio API key
              agent-payments --simulate                             against the built-in Twilio simulator
              agent-payments --simulate --http 8080                 MCP over Streamable HTTP at http://127.0.0.1:8080/mcp
              agent-payments demo                                   a complete simulated payment, printed step by step

            Settings, from the environment or a JSON or YAML file (--config, AGENT_PAYMENTS_CONFIG); the command
            line wins, then the environment, then the file. `agent-payments config check` prints each one's
            effective value and source; Docs/configuration.md says what each does.

            """ + Setting.overview(),
        version: version,
        subcommands: [Serve.self, Demo.self, Migrate.self, Webhooks.self, ConfigCommand.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve MCP over stdio (the default), or over Streamable HTTP with --http.")

    @OptionGroup var options: ServeOptions

    func validate() throws {
        _ = try options.load()
    }

    func run() async throws {
        try await Self.serve(try options.load())
    }

    /// Serves MCP with `configuration` until the end of input (stdio) or a signal.
    static func serve(_ configuration: ServerConfiguration) async throws {
        if let http = configuration.http {
            try await serveHTTP(configuration, http: http)
            return
        }
        let broadcast = LogBroadcastSwitch()
        let (server, redactor, logger) = prepare(configuration, broadcast: broadcast)
        try await withStore(configuration, logger: logger) { paymentsConfiguration, database in
            let webhooks = webhookDispatcher(configuration, outbox: database?.outbox, logger: logger)
            var paymentsConfiguration = paymentsConfiguration
            paymentsConfiguration.notices = webhooks
            let payments = try PaymentsSystem(configuration: paymentsConfiguration, logger: logger)
            // Start-up lines go to stderr only; once the system is up, a legacy client that set a log
            // level hears of what happens outside its requests too (callbacks, expiry).
            let started = Task {
                _ = try? await payments.ready(waitingUpTo: .seconds(3600))
                broadcast.turnOn()
            }
            defer { started.cancel() }
            let tools = makeTools(configuration, server: server, system: payments, redactor: redactor)
            // One group: the payments system, then MCP over stdio, which answers at once while the
            // callback server, simulator and tunnel come up. SIGTERM, SIGINT or the end of standard
            // input shut down in reverse order: listen streams end with their result and stdout is
            // written out, then the tunnel is stopped and reaped and the listeners close. A part of
            // the payments system that fails to start does not stop MCP: tools report why.
            try await runGroup(
                webhookServices(webhooks) + [
                    .init(
                        service: payments, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .ignore),
                    .init(service: LibraryWarmUp(name: "libcurl", payments: payments, load: Serve.loadLibcurl)),
                    // After the system, before the transport: at shutdown its commands finish before the system stops.
                    .init(service: tools),
                    // Standard input is read once the local parts listen (milliseconds; at most
                    // 2 s), so a client's first tool call finds the system up: a tool never waits
                    // for it, and would answer "still starting". A tunnel's public URL is not
                    // waited for (seconds): until it comes, tools say so.
                    .init(
                        service: StdioMCPService(
                            server: server,
                            before: { [publicURL = paymentsConfiguration.publicURL] in
                                if case .ngrok = publicURL { return }
                                _ = try? await payments.ready(waitingUpTo: .seconds(2))
                            }), successTerminationBehavior: .gracefullyShutdownGroup),
                ], logger: logger)
        }
    }

    /// What both transports start from: the open-file limit raised (every open connection costs
    /// a file; the listener's connection cap is sized from it), the MCP server, and logging
    /// through the redactor to stderr and MCP log messages (`broadcast`: also those outside any
    /// request, to every legacy client while it is on — right for stdio's one client once it has
    /// started, never for HTTP's many).
    static func prepare(
        _ configuration: ServerConfiguration, broadcast: LogBroadcastSwitch
    ) -> (MCPServer, Redactor, Logger) {
        let files = FileDescriptorLimit.raiseSoftLimitToHard()
        let server = PaymentsMCP.makeServer(version: AgentPayments.version)
        let redactor = Redactor(secrets: configuration.secrets)
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            MCPLogHandler(label: label, server: server, redactor: redactor, level: level, broadcast: broadcast)
        }
        let logger = Logger(label: "agent-payments")
        logger.info("open-file limit", metadata: ["files.before": "\(files.before)", "files.now": "\(files.after)"])
        return (server, redactor, logger)
    }

    /// The MCP face of `system` on `server` (both transports), its tools, resource and prompts
    /// installed.
    static func makeTools(
        _ configuration: ServerConfiguration, server: MCPServer, system: PaymentsSystem, redactor: Redactor
    ) -> PaymentsMCP {
        let tools = PaymentsMCP(
            server: server, coordinator: system.coordinator, defaults: configuration.defaults, redactor: redactor,
            logger: Logger(label: "agent-payments.tools"), maximumWait: configuration.maximumWait,
            callSIDHeader: ServerConfiguration.callSIDHeader)
        tools.install()
        return tools
    }

    /// The webhook dispatcher for the configured endpoints, if any (its start-up line on stderr
    /// names them, never their secrets).
    static func webhookDispatcher(
        _ configuration: ServerConfiguration, outbox: (any PaymentOutbox)?, logger: Logger
    ) -> WebhookDispatcher? {
        guard let settings = configuration.webhooks else { return nil }
        logger.info(
            "payment events go to webhooks",
            metadata: [
                "webhooks": "\(settings.endpoints.map { "\($0.name) (\($0.events))" }.joined(separator: ", "))",
                "webhooks.queue": "\(outbox == nil ? "memory" : "database outbox")",
            ])
        return WebhookDispatcher(settings: settings, outbox: outbox, logger: Logger(label: "agent-payments.webhooks"))
    }

    /// The dispatcher as the group's first service, so that it stops last: after the flow has
    /// made its last events, queued deliveries get their moment.
    static func webhookServices(_ dispatcher: WebhookDispatcher?) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        dispatcher.map { [.init(service: $0)] } ?? []
    }

    /// Runs `services` as one group until SIGTERM or SIGINT (or one ends it), shutting down in
    /// reverse order; a part that does not stop within 10 s is cancelled, so the process always ends.
    static func runGroup(_ services: [ServiceGroupConfiguration.ServiceConfiguration], logger: Logger) async throws {
        var lifecycle = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        lifecycle.maximumGracefulShutdownDuration = .seconds(10)
        try await ServiceGroup(configuration: lifecycle).run()
    }
}

extension Serve {
    /// Loads libcurl, which LazyCurl otherwise loads on the first HTTP request; `nil` once
    /// loaded, else why not.
    @Sendable static func loadLibcurl() -> String? {
        lazy_curl_load() == 1 ? nil : (lazy_curl_error().map { String(cString: $0) } ?? "libcurl could not be loaded")
    }
}
