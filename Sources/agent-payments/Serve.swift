import AgentPaymentsCLI
import ArgumentParser
import Foundation
import Hummingbird
// Stands in for libcurl until the first request loads it (Package.swift, serverLinking).
import LazyCurl
import ListenerGuard
import Logging
import MCPCore
import MCPHTTP
import OTel
import PaymentEvents
import PaymentStorePostgres
import PaymentsMCP
import PaymentsService
import PaymentsSettings
import Prometheus
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve MCP over stdio (the default), or over Streamable HTTP with --http.")

    @OptionGroup var options: ServeOptions

    func validate() throws {
        _ = try options.load(environment: processEnvironment())
    }

    func run() async throws {
        try await Self.serve(try options.load(environment: processEnvironment()))
    }

    /// What a server starts before the rest of itself: the engine, its logging and metrics, and
    /// over stdio the serving itself, so that a client's `initialize` is answered while the
    /// payments system, the tools and the service group are made (Docs/benchmarks.md). Until the
    /// group runs the serving every line but the handshake waits
    /// (``StdioMCPService/starting(server:gate:handshakeOnlyUntilRun:)``); tool calls then wait
    /// for the listener (``listening``).
    struct Beginning: Sendable {
        let server: MCPServer
        let redactor: Redactor
        let broadcast: LogBroadcastSwitch
        let metrics: PrometheusCollectorRegistry?
        let files: (before: Int, after: Int)
        /// Over stdio: the serving, and the gate that holds tool calls until the listener is up.
        let stdio: StdioMCPService?
        let listening: InputGate?

        /// Begins serving `configuration`. Synchronous: the entry point calls it on the main
        /// thread before Swift's concurrency runtime has started (which takes most of a
        /// millisecond) so that the stdio reader answers the handshake meanwhile.
        init(_ configuration: ServerConfiguration) {
            // Over stdio, legacy clients that set a level hear of what happens outside their requests
            // (callbacks, expiry) once the system is up; over HTTP, never (many clients).
            broadcast = LogBroadcastSwitch()
            files = FileDescriptorLimit.raiseSoftLimitToHard() // the connection cap is sized from it
            server = PaymentsMCP.makeServer(version: AgentPayments.version)
            redactor = Redactor(secrets: configuration.secrets)
            MCPLogHandler.bootstrap(
                server: server, redactor: redactor, level: configuration.logLevel, broadcast: broadcast,
                json: configuration.logsJSON)
            metrics = PrometheusMetrics.bootstrap(configuration.metrics)
            guard configuration.http == nil else {
                stdio = nil
                listening = nil
                return
            }
            // Tool calls wait (at most 2 s) until the local parts listen; the handshake never does.
            let listening = StdioMCPService.startingGate()
            // It reads and answers the handshake from here on, the rest once the group runs it.
            stdio = StdioMCPService.starting(server: server, gate: listening, handshakeOnlyUntilRun: true)
            self.listening = listening
        }
    }

    /// Serves MCP with `configuration` until the end of input (stdio) or a signal: the one
    /// application (Twilio's callbacks, `/healthz`, and with `--http` the MCP endpoint and the
    /// amounts due) and one group of services. SIGTERM, SIGINT or the end of standard input shut
    /// the group down in reverse order: MCP's streams end with their result and stdout is written
    /// out, then the listener closes, then the payments system (its tunnel stopped and reaped).
    /// `beginning` is what the entry point has already started (``Beginning``), if anything.
    static func serve(_ configuration: ServerConfiguration, beginning: Beginning? = nil) async throws {
        let beginning = beginning ?? Beginning(configuration)
        let (server, redactor, broadcast, metrics, files) = (
            beginning.server, beginning.redactor, beginning.broadcast, beginning.metrics, beginning.files
        )
        let logger = Logger(label: "agent-payments")
        logger.info("open-file limit", metadata: ["files.before": "\(files.before)", "files.now": "\(files.after)"])
        // The database (when configured) is a service of the group, migrated before anything listens.
        let database = configuration.makeDatabase()
        var payments = try configuration.payments(on: database, standardError: Self.toOperator)
        // A tunnel's URL is not waited for: until it comes, tools say so.
        if payments.publicURL.isTunnel { beginning.listening?.open() }
        let audit = payments.audit
        let webhooks = configuration.webhookDispatcher(outbox: database?.outbox, logger: logger)
        payments.notices = webhooks
        let system = try PaymentsSystem(configuration: payments, logger: logger)
        let tools = PaymentsMCP(
            server: server, coordinator: system.coordinator, defaults: configuration.defaults, redactor: redactor,
            logger: Logger(label: "agent-payments.tools"), maximumWait: configuration.maximumWait,
            callSIDHeader: ServerConfiguration.callSIDHeader)
        tools.install()

        let transport = configuration.transportConfiguration(auditingIn: audit).map {
            MCPHTTPTransport(server: server, configuration: $0, logger: Logger(label: "agent-payments.http"))
        }
        if transport != nil { configuration.warnIfUnauthenticated(logger: logger, saying: Self.toOperator) }
        let listener = configuration.listener
        // The application is built by its service, beside MCP over stdio, which answers at once.
        let callbacks = CallbackServer(system: system, host: listener.host, port: listener.port) {
            let router = Router(context: ListenerRequestContext.self)
            router.get("healthz") { _, _ in "ok\n" } // the seed's name for /livez
            router.addRoutes(system.healthRoutes(context: ListenerRequestContext.self))
            router.addRoutes(system.callbackRoutes(context: ListenerRequestContext.self))
            if let transport {
                transport.addRoutes(to: router, channel: { $0.channel })
                // The backend fixes a call's amount with the same tokens (payments:charge).
                router.addRoutes(
                    AmountDueRoutes<ListenerRequestContext>(coordinator: system.coordinator) { request, context in
                        switch await transport.authenticate(request, channel: context.channel) {
                        case .principal(let principal): .admitted(principal.paymentActor)
                        case .refused(let response): .refused(response)
                        }
                    }.routes())
            }
            if configuration.metrics == .listener {
                PrometheusMetrics.route(metrics, on: router, host: listener.host, transport: transport)
            }
            var app = Application(
                router: router, server: .guardedHTTP1(limits: listener.limits, logger: logger),
                configuration: ApplicationConfiguration(
                    address: .hostname(listener.host, port: listener.port), serverName: "agent-payments",
                    backlog: listener.limits.backlog),
                onServerRunning: { channel in
                    try? await audit?.append(configuration.startRecord) // migrated by now
                    await system.serverRunning(channel)
                    if let transport {
                        configuration.announceEndpoint(
                            of: transport, port: channel.localAddress?.port ?? 0, saying: Self.toOperator)
                    }
                }, logger: logger)
            if let database {
                app.beforeServerStarts {
                    try await system.preparing {
                        _ = try await database.usable { () async throws(PostgresStoreError) in
                            try await database.prepare(waitingUpTo: configuration.databaseStartTimeout)
                        }
                        logger.info(
                            "payment sessions are stored in PostgreSQL",
                            metadata: ["database": "\(database.configuration)"]
                        )
                    }
                }
            }
            return app
        }

        // A part that fails to start stops the server over HTTP, and on a database (a replica,
        // which its supervisor restarts: status 75 says the database was away); over stdio alone
        // MCP stays up and tools say why.
        let failure: ServiceGroupConfiguration.ServiceConfiguration.TerminationBehavior =
            configuration.http == nil && database == nil ? .ignore : .cancelGroup
        // Traces first, the database and the webhooks next, so that they stop last: the exporter
        // sends the last spans, queued deliveries get their moment.
        let traces = try configuration.tracing.map {
            try OTel.bootstrap(configuration: .agentPayments, environment: $0)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = traces.map { [.named($0, as: "traces")] } ?? []
        services += database.map { [.named($0)] } ?? []
        services += webhooks.map { [.named($0)] } ?? []
        services += [
            .named(system, success: .gracefullyShutdownGroup, failure: failure),
            .named(callbacks, failure: failure),
            .named(LibraryWarmUp(name: "libcurl", payments: system, load: Serve.loadLibcurl)),
            // Before the transport: at shutdown its commands finish before the system stops.
            .named(tools),
        ]
        services += PrometheusMetrics.listener(metrics, configuration, transport: transport, logger: logger)
        if let transport {
            services.append(.named(MCPHTTPService(transport: transport)))
            if case .ngrok = payments.publicURL {
                services.append(
                    .named(
                        system.whenReady {
                            configuration.announceTunnel(
                                of: transport, url: $0.receiver.publicBaseURL, saying: Self.toOperator)
                        }))
            }
        } else if let stdio = beginning.stdio, let listening = beginning.listening {
            services.append(
                .named(
                    system.whenReady { _ in
                        broadcast.turnOn()
                        listening.open()
                    }))
            // Last, so that it stops first.
            services.append(.named(stdio, success: .gracefullyShutdownGroup))
        }
        if database == nil, let stdio = beginning.stdio, stdio.inputEnded {
            // The client has left already (a handshake, then the end of its input): nothing is
            // started only to be stopped. What was queued is written, and the process exits 0.
            // With a database the group still runs: its start says whether the database can be
            // used (status 75 for a replica's supervisor when not).
            logger.info("standard input ended before the server started")
            await stdio.run()
            return
        }
        var lifecycle = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        lifecycle.maximumGracefulShutdownDuration = .seconds(10) // then cancelled: the process always ends
        try await ServiceGroup(configuration: lifecycle).run()
    }

    /// What the server says to its operator (PaymentsSettings' `operatorLine`s): standard error.
    static let toOperator: @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }

    /// Loads libcurl, which LazyCurl otherwise loads on the first HTTP request; `nil` once
    /// loaded, else why not.
    @Sendable static func loadLibcurl() -> String? {
        lazy_curl_load() == 1 ? nil : (lazy_curl_error().map { String(cString: $0) } ?? "libcurl could not be loaded")
    }
}
