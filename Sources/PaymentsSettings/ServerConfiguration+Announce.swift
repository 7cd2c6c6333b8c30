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
        if audit == .database { payments.audit = database.audit }
        return payments
    }

    /// The database client the configuration names, if any (a Service for the host's group).
    public func makeDatabase() -> PostgresPaymentDatabase? {
        database.map { PostgresPaymentDatabase(configuration: $0, logger: Logger(label: "agent-payments.database")) }
    }

    /// The payments configuration: on `database` when there is one (its store, feed, ledger,
    /// callback key and, by default, the audit table), with the audit trail wherever
    /// `AGENT_PAYMENTS_AUDIT` says otherwise (`standardError` writes standard error's lines).
    public func payments(
        on database: PostgresPaymentDatabase?, standardError: @escaping @Sendable (String) -> Void
    ) throws(ConfigurationError) -> PaymentsConfiguration {
        var payments = database.map(payments(on:)) ?? self.payments
        if payments.audit == nil { payments.audit = try auditTrail(standardError: standardError) }
        return payments
    }

    /// The audit trail when it is not the database's: JSON lines to `standardError` (lines given
    /// with their line feed) or appended to a file; `nil` when off or in the database.
    public func auditTrail(
        standardError: @escaping @Sendable (String) -> Void
    ) throws(ConfigurationError) -> (any AuditTrail)? {
        switch audit {
        case .off, .database: return nil
        case .standardError: return JSONLinesAuditTrail(writer: standardError)
        case .file(let path):
            do {
                return try JSONLinesAuditTrail(path: path)
            } catch {
                throw .invalidValue(variable: Setting.audit.name, value: path, expected: "\(error)")
            }
        }
    }

    /// The HTTP transport's configuration (with `--http`), each refused credential recorded in
    /// `audit` (``AuditAction/authenticationRefused``, by `unknown`, from the client's address).
    public func transportConfiguration(auditingIn audit: (any AuditTrail)?) -> MCPHTTPConfiguration? {
        guard var transport = http?.transport else { return nil }
        if let audit {
            let replica = payments.replica
            transport.onRefusedAuthentication = { refusal in
                await audit.record(
                    AuditEntry(
                        replica: replica, actor: refusal.principal ?? "unknown",
                        action: AuditAction.authenticationRefused.rawValue,
                        outcome: "refused: \(refusal.reason)", origin: refusal.address))
            }
        }
        return transport
    }

    /// The first record of a start: this configuration's summary, by `system`.
    public var startRecord: AuditEntry {
        let mode = simulated ? "simulator" : "twilio"
        let transport = http.map { "http \($0.host):\($0.port)" } ?? "stdio"
        let store = database == nil ? "memory" : "postgresql"
        return AuditEntry(
            replica: payments.replica, actor: "system", action: AuditAction.configurationLoaded.rawValue, outcome: "ok",
            detail: "\(mode), \(transport), sessions in \(store), audit \(audit)")
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
