import CallbackHTTP
import Foundation
import ListenerGuard
import Logging
import MCPHTTP
import PaymentsMCP
import PaymentsService
import PaymentsSettings
import ServiceLifecycle
import Synchronization
import PaymentFlow

extension Serve {
    /// Serves MCP over Streamable HTTP on the payments system's own listener, beside the Twilio
    /// callbacks, until SIGTERM or SIGINT. Standard input is not read; standard output stays
    /// silent. Shutdown runs in reverse: the MCP streams end (listen streams with their
    /// result), then the flow, the tunnel and the listener.
    static func serveHTTP(_ configuration: ServerConfiguration, http: HTTPSettings) async throws {
        let (server, redactor, logger) = prepare(configuration, broadcast: LogBroadcastSwitch(on: false))
        let transport = MCPHTTPTransport(
            server: server, configuration: http.transport, logger: Logger(label: "agent-payments.http"))
        try await withStore(configuration, logger: logger) { paymentsConfiguration, database in
            let webhooks = webhookDispatcher(configuration, outbox: database?.outbox, logger: logger)
            var payments = paymentsConfiguration
            payments.notices = webhooks
            let built = Mutex<PaymentsSystem?>(nil)
            payments.additionalRoutes = AdditionalRoutes { router in
                transport.addRoutes(to: router, channel: { $0.channel })
                // The backend fixes a call's amount with the same tokens (payments:charge).
                AmountDueRoutes<ListenerRequestContext>(coordinator: {
                    guard let system = built.withLock({ $0 }) else { throw CancellationError() }
                    return system.coordinator
                }) { request, context in
                    switch await transport.authenticate(request, channel: context.channel) {
                    case .principal(let principal): return .admitted(principal.paymentActor)
                    case .refused(let response): return .refused(response)
                    }
                }.add(to: router)
            }
            let system = try PaymentsSystem(configuration: payments, logger: logger)
            built.withLock { $0 = system }
            if !configuration.unauthenticatedExposure.isEmpty {
                // Loud, on purpose: nothing stands between strangers and the payment tools.
                let warning = """
                    agent-payments: WARNING: /mcp accepts requests WITHOUT authentication (--allow-unauthenticated) although it \
                    can be reached from beyond this machine (\(configuration.unauthenticatedExposure.joined(separator: "; "))). \
                    Anyone who reaches it can start, complete and cancel payments. Use this on test benches only.

                    """
                FileHandle.standardError.write(Data(warning.utf8))
                logger.critical(
                    "MCP endpoint is unauthenticated and reachable from other machines (--allow-unauthenticated)")
            }
            let tools = makeTools(configuration, server: server, system: system, redactor: redactor)
            try await runGroup(
                webhookServices(webhooks) + [
                    .init(
                        service: system, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .cancelGroup),
                    .init(service: LibraryWarmUp(name: "libcurl", payments: system, load: Serve.loadLibcurl)),
                    // After the system, before the transport: at shutdown its commands finish before the system stops.
                    .init(service: tools),
                    .init(
                        service: EndpointAnnouncer(
                            system: system, transport: transport, settings: http, logger: logger),
                        failureTerminationBehavior: .cancelGroup),
                    .init(service: MCPHTTPService(transport: transport)),
                ], logger: logger)
        }
    }
}

/// Once the listener is bound: tells the transport its base URL (for `resource_metadata` and
/// the default OAuth audience) and writes `agent-payments: MCP endpoint <url>` to standard
/// error; with a tunnel, the public URL too once it is known. A listener that cannot bind
/// stops the server with the reason.
struct EndpointAnnouncer: Service, CustomStringConvertible {
    var description: String { "mcp-endpoint" }
    let system: PaymentsSystem
    let transport: MCPHTTPTransport
    let settings: HTTPSettings
    let logger: Logger

    struct ListenFailure: Error, CustomStringConvertible {
        var description: String
    }

    func run() async throws {
        let port: Int?
        do {
            port = try await cancelWhenGracefulShutdown {
                try await system.callbackListenerPort(waitingUpTo: .seconds(3600))
            }
        } catch let error as PaymentsStartError {
            let message = "agent-payments: cannot serve MCP over HTTP on \(settings.host):\(settings.port): \(error)\n"
            FileHandle.standardError.write(Data(message.utf8))
            throw ListenFailure(description: message)
        } catch {
            return // shut down first
        }
        guard let port else { return }
        let local = settings.localBaseURL(port: port)
        let explicit: String? = { if case .explicit(let url) = system.configuration.publicURL { url } else { nil } }()
        transport.setBaseURL(explicit ?? local)
        FileHandle.standardError.write(
            Data("agent-payments: MCP endpoint \(local)\(transport.configuration.path)\n".utf8))
        if case .ngrok = system.configuration.publicURL {
            _ = try? await cancelWhenGracefulShutdown { try await system.ready(waitingUpTo: .seconds(3600)) }
            if let tunnel = system.receiver.publicBaseURL {
                transport.setBaseURL(tunnel)
                FileHandle.standardError.write(
                    Data("agent-payments: public MCP endpoint \(tunnel)\(transport.configuration.path)\n".utf8))
            }
        }
        try? await gracefulShutdown()
    }
}
