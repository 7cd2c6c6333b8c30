public import Foundation
public import PaymentFlow

extension OutboxStatus {
    /// The operators' view of the outbox (`agent-payments webhooks status`): one row per
    /// endpoint, as an aligned table or JSON lines, ages counted from `now`.
    /// Why the webhook commands need a database.
    public static let needsDatabase = """
        the webhook outbox is kept in PostgreSQL: set DATABASE_URL or --database-url. With the in-memory store, \
        undelivered events live only in the serving process, which logs its counts at warning when deliveries fail.
        """

    /// What `webhooks replay` says it did.
    public static func replayed(_ count: Int, endpoint: String?) -> String {
        "\(count) failed event\(count == 1 ? "" : "s") made pending again\(endpoint.map { " for \($0)" } ?? "")"
    }

    public static func report(_ statuses: [OutboxStatus], json: Bool, now: Date) -> String {
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
