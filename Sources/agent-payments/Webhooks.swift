import ArgumentParser
import Foundation
import Logging
import PaymentFlow
import PaymentStorePostgres
import TwilioPayments

/// `agent-payments webhooks …`: the webhook outbox of a PostgreSQL deployment, for operators.
struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "The webhook outbox in PostgreSQL: what is pending, failed, delivered; replay failed events.",
        subcommands: [WebhooksStatus.self, WebhooksReplay.self], defaultSubcommand: WebhooksStatus.self)
}

extension DatabaseOptions {
    /// Why the webhook commands need a database.
    static let outboxMissing = """
        the webhook outbox is kept in PostgreSQL: set DATABASE_URL or --database-url. With the in-memory store, \
        undelivered events live only in the serving process, which logs its counts at warning when deliveries fail.
        """

    /// Runs `body` on the outbox of a running, migrated database.
    func withOutbox(_ body: (PostgresPaymentOutbox) async throws(PaymentStoreError) -> Void) async throws {
        try await withDatabase(missing: Self.outboxMissing, label: "agent-payments.webhooks") { database, settings, _ in
            do throws(PaymentStoreError) {
                try await body(database.outbox)
            } catch {
                FileHandle.standardError.write(
                    Data("agent-payments: the webhook outbox at \(settings) could not be read: \(error)\n".utf8))
                throw ExitCode(75)
            }
        }
    }
}

/// `agent-payments webhooks status`: one line per endpoint.
struct WebhooksStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Per endpoint: pending (retrying, in flight), failed, delivered in the last day, the oldest pending event, the last error."
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "JSON lines instead of a table.")
    var json = false

    func run() async throws {
        try await database.withOutbox { outbox throws(PaymentStoreError) in
            let statuses = try await outbox.status()
            print(Self.render(statuses, json: json, now: Date()), terminator: "")
        }
    }

    static func render(_ statuses: [OutboxStatus], json: Bool, now: Date) -> String {
        if json {
            return statuses.map { status in
                var object: [String: Any] = [
                    "endpoint": status.destination, "pending": status.pending, "retrying": status.retrying,
                    "inFlight": status.inFlight,
                    "failed": status.failed, "delivered": status.delivered,
                ]
                if let oldest = status.oldestPending {
                    object["oldestPendingSeconds"] = Int(now.timeIntervalSince(oldest))
                }
                if let error = status.lastError { object["lastError"] = error }
                let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
                return String(decoding: data, as: UTF8.self) + "\n"
            }.joined()
        }
        guard !statuses.isEmpty else { return "no webhook events are kept (none made yet, or all purged)\n" }
        let header = [
            "ENDPOINT", "PENDING", "RETRYING", "IN FLIGHT", "FAILED", "DELIVERED", "OLDEST PENDING", "LAST ERROR",
        ]
        let rows = statuses.map { status in
            [
                status.destination, "\(status.pending)", "\(status.retrying)", "\(status.inFlight)", "\(status.failed)",
                "\(status.delivered)",
                status.oldestPending.map { "\(Int(now.timeIntervalSince($0)))s ago" } ?? "-", status.lastError ?? "-",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }.joined()
    }
}

/// `agent-payments webhooks replay`: failed events become pending again, as if made now.
struct WebhooksReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract:
            "Make failed events pending again (they are delivered anew, in order per payment, by the running replicas)."
    )

    @OptionGroup var database: DatabaseOptions

    @Option(
        help: ArgumentHelp(
            "Only this endpoint's events (its name; `default` for AGENT_PAYMENTS_WEBHOOK_URL).", valueName: "NAME"))
    var endpoint: String?

    @Option(
        help: ArgumentHelp(
            "Only events that failed at or after this time (ISO 8601, e.g. 2026-12-04T09:00:00Z).", valueName: "TIME"))
    var since: String?

    func validate() throws {
        if let since, (try? Date(since, strategy: .iso8601)) == nil {
            throw ValidationError("--since \(since) is not an ISO 8601 time such as 2026-12-04T09:00:00Z")
        }
    }

    func run() async throws {
        let from = try since.map { try Date($0, strategy: .iso8601) }
        try await database.withOutbox { outbox throws(PaymentStoreError) in
            let count = try await outbox.replay(destination: endpoint, failedSince: from)
            print(
                "\(count) failed event\(count == 1 ? "" : "s") made pending again\(endpoint.map { " for \($0)" } ?? "")"
            )
        }
    }
}
