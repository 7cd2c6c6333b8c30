import Foundation
public import Logging
public import MCPHTTP
public import PaymentsService
public import PaymentStorePostgres
import TwilioPayments
public import PaymentEvents
public import PaymentFlow

extension ServerConfiguration {
    /// Once the listener runs on `port`: tells `transport` its base URL (for `resource_metadata`
    /// and the default OAuth audience; an explicit public URL wins) and tells the operator
    /// `agent-payments: MCP endpoint <url>` through `say` (the executable's writes standard error).
    public func announceEndpoint(of transport: MCPHTTPTransport, port: Int, saying say: (String) -> Void) {
        guard let http else { return }
        let local = http.localBaseURL(port: port)
        if case .explicit(let url) = payments.publicURL {
            transport.setBaseURL(url)
        } else {
            transport.setBaseURL(local)
        }
        say(operatorLine("MCP endpoint \(local)\(transport.configuration.path)"))
    }

    /// Once a tunnel's public URL is known: the transport's base URL, and
    /// `agent-payments: public MCP endpoint <url>` through `say`.
    public func announceTunnel(of transport: MCPHTTPTransport, url: String?, saying say: (String) -> Void) {
        guard let url else { return }
        transport.setBaseURL(url)
        say(operatorLine("public MCP endpoint \(url)\(transport.configuration.path)"))
    }

    /// Says loudly, through `say` and in the log, that `/mcp` takes unauthenticated requests
    /// from beyond this machine, when `--allow-unauthenticated` let it start so.
    public func warnIfUnauthenticated(logger: Logger, saying say: (String) -> Void) {
        guard !unauthenticatedExposure.isEmpty else { return }
        say(
            operatorLine(
                """
                WARNING: /mcp accepts requests WITHOUT authentication (--allow-unauthenticated) although it \
                can be reached from beyond this machine (\(unauthenticatedExposure.joined(separator: "; "))). \
                Anyone who reaches it can start, complete and cancel payments. Use this on test benches only.
                """))
        logger.critical("MCP endpoint is unauthenticated and reachable from other machines (--allow-unauthenticated)")
    }

    /// `sentence` as a line for the operator, line feed included: `agent-payments: <sentence>`, or
    /// with `AGENT_PAYMENTS_LOG_FORMAT=json` a JSON line like the logs' (level `notice`).
    public func operatorLine(_ sentence: String) -> String {
        guard logsJSON else { return "agent-payments: \(sentence)\n" }
        let entry = [
            "timestamp": Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            "level": "notice", "label": "agent-payments", "message": sentence,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(entry)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The payments configuration on `database`: its store, change feed and ledger, and the
    /// callback key every replica shares (``callbackKey`` when configured, else the database's).
    public func payments(on database: PostgresPaymentDatabase) -> PaymentsConfiguration {
        var payments = payments
        payments.store = database.store
        payments.changeFeed = database.feed
        payments.ledger = database.ledger
        payments.callbackKey = callbackKey ?? database
        return payments
    }

    /// The webhook dispatcher for the configured endpoints, if any, queueing in `outbox` (a
    /// database's) or in memory; its start-up line names the endpoints, never their secrets.
    public func webhookDispatcher(outbox: (any PaymentOutbox)?, logger: Logger) -> WebhookDispatcher? {
        guard let webhooks else { return nil }
        let endpoints = webhooks.endpoints.map { "\($0.name) (\($0.events))" }.joined(separator: ", ")
        logger.info("payment events go to webhooks", metadata: ["webhooks": "\(endpoints)"])
        return WebhookDispatcher(settings: webhooks, outbox: outbox, logger: Logger(label: "agent-payments.webhooks"))
    }
}
