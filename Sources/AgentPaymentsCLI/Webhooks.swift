public import ArgumentParser
import Foundation
import PaymentEvents
import PaymentFlow
import PaymentStorePostgres
import PaymentsSettings

/// `agent-payments webhooks …`: the webhook outbox of a PostgreSQL deployment, for operators.
public struct Webhooks: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "The webhook outbox in PostgreSQL: what is pending, failed, delivered; replay failed events.",
        subcommands: [WebhooksStatus.self, WebhooksReplay.self], defaultSubcommand: WebhooksStatus.self)

    public init() {}
}

/// `agent-payments webhooks status`: one line per endpoint.
public struct WebhooksStatus: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Per endpoint: pending (retrying, in flight), failed, delivered in the last day, the oldest pending event, the last error."
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "JSON lines instead of a table.")
    var json = false

    public init() {}

    public func run() async throws {
        try await database.withDatabase(missing: OutboxStatus.needsDatabase) { database, _ in
            let statuses = try await database.usable { try await database.outbox.status() }
            try CommandHost.required().output(OutboxStatus.report(statuses, json: json, now: Date()))
        }
    }
}

/// `agent-payments webhooks replay`: failed events become pending again, as if made now.
public struct WebhooksReplay: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
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

    public init() {}

    public func validate() throws {
        if let since, (try? Date(since, strategy: .iso8601)) == nil {
            throw ValidationError("--since \(since) is not an ISO 8601 time such as 2026-12-04T09:00:00Z")
        }
    }

    public func run() async throws {
        let from = try since.map { try Date($0, strategy: .iso8601) }
        try await database.withDatabase(missing: OutboxStatus.needsDatabase) { database, _ in
            let count = try await database.usable {
                try await database.outbox.replay(destination: endpoint, failedSince: from)
            }
            try CommandHost.required().output(OutboxStatus.replayed(count, endpoint: endpoint) + "\n")
        }
    }
}
