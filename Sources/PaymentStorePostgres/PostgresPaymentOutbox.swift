public import Foundation
public import Logging
public import PaymentFlow
public import PostgresNIO

/// The outbox ``PostgresPaymentStore`` writes with each change (`agent_payments_outbox`, one row
/// per message), read by the webhook dispatcher of every replica.
///
/// A claim is one `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED)`: two replicas
/// claiming at once lock different rows, and a row locked by one is skipped by the other. The
/// rows it takes are each payment's oldest pending message for the destination that is due,
/// not leased (or whose lease has run out), and has no earlier pending message of its payment:
/// so one payment's messages go one at a time, in order, whichever replica delivers them. A
/// claim sets the lease and counts the attempt; the outcome is written only while the row is
/// still the claimer's.
public final class PostgresPaymentOutbox: PaymentOutbox, Sendable {
    let client: PostgresClient
    let logger: Logger
    let requestTimeout: Duration
    /// The clock ``requestTimeout`` is measured on.
    let clock: any Clock<Duration>

    /// An outbox on `client`, which must be running and migrated (``PostgresPaymentDatabase``).
    /// A request fails as unreachable after `requestTimeout`, measured on `clock`.
    public init(
        client: PostgresClient, requestTimeout: Duration = .seconds(2), clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger
    ) {
        self.client = client
        self.requestTimeout = requestTimeout
        self.clock = clock
        self.logger = logger
    }

    public func claim(
        destination: String, owner: String, limit: Int, lease: Duration
    ) async throws(PaymentStoreError) -> [ClaimedOutboxMessage] {
        let leaseSeconds = Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18
        let query: PostgresQuery = """
            UPDATE agent_payments_outbox o
            SET attempts = o.attempts + 1, lease_owner = \(owner), lease_until = clock_timestamp() + make_interval(secs => \(leaseSeconds))
            WHERE o.seq IN (
                SELECT c.seq FROM agent_payments_outbox c
                WHERE c.destination = \(destination) AND c.state = 'pending' AND c.due_at <= clock_timestamp()
                    AND (c.lease_until IS NULL OR c.lease_until < clock_timestamp())
                    AND NOT EXISTS (
                        SELECT 1 FROM agent_payments_outbox p
                        WHERE p.destination = c.destination AND p.payment_id = c.payment_id AND p.state = 'pending' AND p.seq < c.seq)
                ORDER BY c.seq
                LIMIT \(Int64(max(1, limit)))
                FOR UPDATE SKIP LOCKED)
            RETURNING o.seq, o.event_id, o.payment_id, o.type, o.body, o.attempts, o.since, o.lease_until
            """
        let rows = try await run { [client, logger] in
            var claimed: [ClaimedOutboxMessage] = []
            let decoded = try await client.query(query, logger: logger).decode(
                (Int64, String, String, String, String, Int32, Date, Date).self)
            for try await (seq, id, payment, type, body, attempts, since, leaseUntil) in decoded {
                claimed.append(
                    ClaimedOutboxMessage(
                        sequence: seq,
                        message: OutboxMessage(
                            destination: destination, id: id, payment: payment, type: type, body: Array(body.utf8)),
                        attempts: Int(attempts), since: since, owner: owner, leaseUntil: leaseUntil))
            }
            return claimed
        }
        // RETURNING comes in no promised order; deliveries start oldest first.
        return rows.sorted { $0.sequence < $1.sequence }
    }

    public func delivered(_ claim: ClaimedOutboxMessage) async throws(PaymentStoreError) {
        try await execute(
            """
            UPDATE agent_payments_outbox SET state = 'delivered', finished_at = clock_timestamp(), lease_owner = NULL, lease_until = NULL
            WHERE seq = \(claim.sequence) AND state = 'pending' AND lease_owner = \(claim.owner)
            """)
    }

    public func retry(
        _ claim: ClaimedOutboxMessage, after delay: Duration, reason: String
    ) async throws(PaymentStoreError) {
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        try await execute(
            """
            UPDATE agent_payments_outbox
            SET due_at = clock_timestamp() + make_interval(secs => \(seconds)), lease_owner = NULL, lease_until = NULL, last_error = \(reason)
            WHERE seq = \(claim.sequence) AND state = 'pending' AND lease_owner = \(claim.owner)
            """)
    }

    public func failed(_ claim: ClaimedOutboxMessage, reason: String) async throws(PaymentStoreError) {
        try await execute(
            """
            UPDATE agent_payments_outbox
            SET state = 'failed', finished_at = clock_timestamp(), lease_owner = NULL, lease_until = NULL, last_error = \(reason)
            WHERE seq = \(claim.sequence) AND state = 'pending' AND lease_owner = \(claim.owner)
            """)
    }

    public func status() async throws(PaymentStoreError) -> [OutboxStatus] {
        let query: PostgresQuery = """
            SELECT destination,
                count(*) FILTER (WHERE state = 'pending'),
                count(*) FILTER (WHERE state = 'pending' AND attempts > 0),
                count(*) FILTER (WHERE state = 'pending' AND lease_until > clock_timestamp()),
                count(*) FILTER (WHERE state = 'failed'),
                count(*) FILTER (WHERE state = 'delivered'),
                min(since) FILTER (WHERE state = 'pending'),
                (SELECT l.last_error FROM agent_payments_outbox l WHERE l.destination = o.destination AND l.last_error IS NOT NULL
                 ORDER BY l.seq DESC LIMIT 1)
            FROM agent_payments_outbox o GROUP BY destination ORDER BY destination
            """
        return try await run { [client, logger] in
            var statuses: [OutboxStatus] = []
            let decoded = try await client.query(query, logger: logger).decode(
                (String, Int64, Int64, Int64, Int64, Int64, Date?, String?).self)
            for try await (destination, pending, retrying, inFlight, failed, delivered, oldest, lastError) in decoded {
                statuses.append(
                    OutboxStatus(
                        destination: destination, pending: Int(pending), retrying: Int(retrying),
                        inFlight: Int(inFlight),
                        failed: Int(failed), delivered: Int(delivered), oldestPending: oldest, lastError: lastError))
            }
            return statuses
        }
    }

    public func replay(destination: String?, failedSince since: Date?) async throws(PaymentStoreError) -> Int {
        try await count(
            """
            UPDATE agent_payments_outbox
            SET state = 'pending', attempts = 0, since = clock_timestamp(), due_at = clock_timestamp(), finished_at = NULL,
                lease_owner = NULL, lease_until = NULL
            WHERE state = 'failed' AND (\(destination)::text IS NULL OR destination = \(destination))
                AND (\(since)::timestamptz IS NULL OR finished_at >= \(since))
            RETURNING 1
            """)
    }

    public func purge(deliveredBefore delivered: Date, failedBefore failed: Date) async throws(PaymentStoreError) -> Int
    {
        try await count(
            """
            DELETE FROM agent_payments_outbox
            WHERE (state = 'delivered' AND finished_at < \(delivered)) OR (state = 'failed' AND finished_at < \(failed))
            RETURNING 1
            """)
    }

    // MARK: Running

    private func execute(_ query: PostgresQuery) async throws(PaymentStoreError) {
        _ = try await count(query)
    }

    private func count(_ query: PostgresQuery) async throws(PaymentStoreError) -> Int {
        try await run { [client, logger] in
            var count = 0
            for try await _ in try await client.query(query, logger: logger) { count += 1 }
            return count
        }
    }

    private func run<T: Sendable>(
        _ request: @escaping @Sendable () async throws -> T
    ) async throws(PaymentStoreError) -> T {
        do {
            return try await withTimeout(requestTimeout, on: clock, request)
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
    }
}
