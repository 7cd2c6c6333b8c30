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
    /// and the default OAuth audience; an explicit public URL wins) and writes
    /// `agent-payments: MCP endpoint <url>` to standard error.
    public func announceEndpoint(of transport: MCPHTTPTransport, port: Int) {
        guard let http else { return }
        let local = http.localBaseURL(port: port)
        if case .explicit(let url) = payments.publicURL {
            transport.setBaseURL(url)
        } else {
            transport.setBaseURL(local)
        }
        say("MCP endpoint \(local)\(transport.configuration.path)")
    }

    /// Once a tunnel's public URL is known: the transport's base URL, and
    /// `agent-payments: public MCP endpoint <url>` on standard error.
    public func announceTunnel(of transport: MCPHTTPTransport, url: String?) {
        guard let url else { return }
        transport.setBaseURL(url)
        say("public MCP endpoint \(url)\(transport.configuration.path)")
    }

    /// Says loudly, on standard error and in the log, that `/mcp` takes unauthenticated requests
    /// from beyond this machine, when `--allow-unauthenticated` let it start so.
    public func warnIfUnauthenticated(logger: Logger) {
        guard !unauthenticatedExposure.isEmpty else { return }
        say(
            """
            WARNING: /mcp accepts requests WITHOUT authentication (--allow-unauthenticated) although it \
            can be reached from beyond this machine (\(unauthenticatedExposure.joined(separator: "; "))). \
            Anyone who reaches it can start, complete and cancel payments. Use this on test benches only.
            """)
        logger.critical("MCP endpoint is unauthenticated and reachable from other machines (--allow-unauthenticated)")
    }

    /// Writes `sentence` to standard error for the operator: `agent-payments: <sentence>`, or with
    /// `AGENT_PAYMENTS_LOG_FORMAT=json` a JSON line like the logs' (level `notice`).
    public func say(_ sentence: String) {
        guard logsJSON else {
            FileHandle.standardError.write(Data("agent-payments: \(sentence)\n".utf8))
            return
        }
        let entry = [
            "timestamp": Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            "level": "notice", "label": "agent-payments", "message": sentence,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(entry)) ?? Data("{}".utf8)
        FileHandle.standardError.write(data + Data("\n".utf8))
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
