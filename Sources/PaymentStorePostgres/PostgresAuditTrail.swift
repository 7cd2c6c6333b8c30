import Foundation
public import Logging
public import PaymentFlow
public import PostgresNIO

/// The audit trail in PostgreSQL (`agent_payments_audit`, migration 4): one hash chain that
/// every replica appends to.
///
/// An append is queued in memory and returns at once, so a command's answer never waits for the
/// database (a voice agent's tool budget is seconds, and a database that is away would spend it).
/// ``run()`` — a child of ``PostgresPaymentDatabase/run()`` — writes the queue in batches of
/// up to 500, each in two statements and no transaction held between them: one reads the newest
/// record's sequence and hash and which of the batch's ids are stored already; the other inserts
/// the batch's rows, each chained to the one before, numbered from the sequence read. The
/// sequence is the table's primary key, so it is the compare-and-set: when another replica
/// appended in between, the insert fails whole on the key and the batch is chained again on the
/// new head. A batch that fails otherwise is retried, in order, with backoff (0.1 s doubling to
/// 5 s) until the database is back: nothing is lost unless the process ends first or more than
/// `capacity` records wait (then appends fail and are counted). A batch written again after its
/// answer was lost skips the ids already stored. A graceful shutdown writes what is queued first.
public actor PostgresAuditTrail: AuditTrail {
    let client: PostgresClient
    let requestTimeout: Duration
    /// The clock ``requestTimeout`` is measured on.
    let clock: any Clock<Duration>
    let logger: Logger
    /// Records waiting to be written, oldest first.
    private var queue: [AuditEntry] = []
    /// The most records that may wait.
    public let capacity: Int
    private nonisolated let doorbell: AsyncStream<Void>
    private nonisolated let ring: AsyncStream<Void>.Continuation

    /// A trail on `client`, which must be running and migrated (``PostgresMigrations``).
    /// A request fails as unreachable after `requestTimeout`, measured on `clock`.
    public init(
        client: PostgresClient, requestTimeout: Duration = .seconds(2), clock: any Clock<Duration> = ContinuousClock(),
        capacity: Int = 100_000, logger: Logger
    ) {
        self.client = client
        self.requestTimeout = requestTimeout
        self.clock = clock
        self.capacity = capacity
        self.logger = logger
        (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func append(_ entry: AuditEntry) throws(AuditTrailError) {
        guard queue.count < capacity else {
            throw AuditTrailError("\(capacity) audit records are waiting for the database; this one was not kept")
        }
        queue.append(entry)
        ring.yield()
    }

    /// Records appended and not yet written.
    public var pending: Int { queue.count }

    /// Writes queued records until cancelled.
    public func run() async {
        var backoff = Duration.milliseconds(100)
        for await _ in doorbell {
            while !queue.isEmpty, !Task.isCancelled {
                let batch = Array(queue.prefix(500))
                if case .failure(let error) = await write(batch) {
                    logger.error(
                        "audit records not written yet; retrying",
                        metadata: ["records.waiting": "\(queue.count)", "reason": "\(error)"])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(5))
                    continue
                }
                queue.removeFirst(batch.count)
                backoff = .milliseconds(100)
            }
        }
    }

    /// Waits until every record appended so far is written, at most `timeout` (the writer must be
    /// running); whether the queue emptied.
    @discardableResult
    public func flush(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !queue.isEmpty, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return queue.isEmpty
    }

    /// Appends `entries` chained after the newest record, chaining them again on a newer head
    /// when another replica appended first (at most a few times, then it is a failure to retry).
    private func write(_ entries: [AuditEntry]) async -> Result<Void, PostgresStoreError> {
        var lastError = PostgresStoreError.unreachable("the audit chain's head kept moving")
        for _ in 0..<5 {
            do {
                try await withTimeout(requestTimeout, on: clock) { [client, logger] in
                    try await Self.append(entries, client: client, logger: logger)
                }
                return .success(())
            } catch {
                let error = PostgresStoreError.from(error)
                // 23505: another replica took the sequence (or, after a lost answer, an id is stored).
                guard case .refused(sqlState: "23505", _) = error else { return .failure(error) }
                lastError = error
            }
        }
        return .failure(lastError)
    }

    /// One attempt: the head and the ids stored already, then every new row in one insert.
    private static func append(_ entries: [AuditEntry], client: PostgresClient, logger: Logger) async throws {
        var last: (sequence: Int64, hash: String)?
        var stored: Set<String> = []
        for try await (sequence, hash, id) in try await client.query(
            """
            SELECT seq, hash, NULL FROM (SELECT seq, hash FROM agent_payments_audit ORDER BY seq DESC LIMIT 1) head
            UNION ALL SELECT NULL, NULL, entry_id FROM agent_payments_audit WHERE entry_id = ANY(\(entries.map(\.id)))
            """, logger: logger
        ).decode((Int64?, String?, String?).self) {
            if let sequence, let hash { last = (sequence, hash) }
            if let id { stored.insert(id) }
        }
        var rows: [Row] = []
        for entry in entries where stored.insert(entry.id).inserted {
            let record = AuditRecord(entry: entry, after: last)
            rows.append(Row(record: record))
            last = (record.sequence, record.hash)
        }
        guard !rows.isEmpty else { return }
        let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
        try await client.query(
            """
            INSERT INTO agent_payments_audit (seq, entry_id, at_ms, replica, actor, action, outcome,
                call_sid, payment_sid, origin, detail, prev_hash, hash)
            SELECT seq, entry_id, at_ms, replica, actor, action, outcome, call_sid, payment_sid, origin, detail,
                prev_hash, hash
            FROM jsonb_to_recordset(\(json)::jsonb) AS r(seq bigint, entry_id text, at_ms bigint, replica text,
                actor text, action text, outcome text, call_sid text, payment_sid text, origin text, detail text,
                prev_hash text, hash text)
            ORDER BY seq
            """, logger: logger)
    }

    /// One record as the insert reads it.
    private struct Row: Encodable {
        var seq: Int64
        var entry_id: String
        var at_ms: Int64
        var replica, actor, action, outcome: String
        var call_sid, payment_sid, origin, detail: String?
        var prev_hash, hash: String

        init(record: AuditRecord) {
            let entry = record.entry
            seq = record.sequence
            entry_id = entry.id
            at_ms = entry.atMilliseconds
            (replica, actor, action, outcome) = (entry.replica, entry.actor, entry.action, entry.outcome)
            (call_sid, payment_sid, origin, detail) = (entry.callSID, entry.paymentSID, entry.origin, entry.detail)
            (prev_hash, hash) = (record.previousHash, record.hash)
        }
    }

    /// Reads the whole trail in order and checks its chain (``AuditChainCheck``): how many
    /// records held, and the first break, if any.
    public func verify() async throws(PostgresStoreError) -> (checked: Int64, broken: AuditBreak?) {
        do {
            var check = AuditChainCheck()
            let rows = try await client.query(
                """
                SELECT seq, entry_id, at_ms, replica, actor, action, outcome, call_sid, payment_sid, origin, detail,
                    prev_hash, hash
                FROM agent_payments_audit ORDER BY seq
                """, logger: logger)
            for try await row in rows {
                let (sequence, id, at, replica, actor, action, outcome, call, payment, origin, detail, previous, hash) =
                    try row.decode(
                        (
                            Int64, String, Int64, String, String, String, String, String?, String?, String?, String?,
                            String, String
                        ).self)
                var entry = AuditEntry(
                    replica: replica, actor: actor, action: action, outcome: outcome, callSID: call,
                    paymentSID: payment, origin: origin, detail: detail, id: id)
                entry.atMilliseconds = at
                entry.detail = detail
                let record = AuditRecord(sequence: sequence, entry: entry, previousHash: previous, hash: hash)
                if let broken = check.next(record) { return (check.checked, broken) }
            }
            return (check.checked, nil)
        } catch {
            throw PostgresStoreError.from(error)
        }
    }
}
