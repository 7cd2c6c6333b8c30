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
            print(OutboxStatus.report(statuses, json: json, now: Date()), terminator: "")
        }
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
