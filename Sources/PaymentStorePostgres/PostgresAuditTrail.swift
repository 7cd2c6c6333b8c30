public import Logging
public import PaymentFlow
public import PostgresNIO

/// The audit trail in PostgreSQL (`agent_payments_audit`, migration 4): one hash chain that
/// every replica appends to.
///
/// An append is queued in memory and returns at once, so a command's answer never waits for the
/// database (a voice agent's tool budget is seconds, and a database that is away would spend it).
/// ``run()`` — a child of ``PostgresPaymentDatabase/run()`` — writes the queue in batches: in
/// one transaction, `pg_advisory_xact_lock`, the newest record's sequence and hash, then the
/// batch's rows, each chained to the one before, so the chain's lock is taken once per batch. A
/// batch that fails is retried, in order, with backoff (0.1 s doubling to 5 s) until the database
/// is back: nothing is lost unless the process ends first or more than `capacity` records wait
/// (then appends fail and are counted). A graceful shutdown writes what is queued first.
public actor PostgresAuditTrail: AuditTrail {
    /// The advisory lock that orders appends across replicas ("audit" in ASCII, distinct from
    /// the migrations' lock).
    static let lockKey: Int64 = 0x6175_6469_74

    let client: PostgresClient
    let requestTimeout: Duration
    let logger: Logger
    /// Records waiting to be written, oldest first.
    private var queue: [AuditEntry] = []
    /// The most records that may wait.
    public let capacity: Int
    private nonisolated let doorbell: AsyncStream<Void>
    private nonisolated let ring: AsyncStream<Void>.Continuation

    /// A trail on `client`, which must be running and migrated (``PostgresMigrations``).
    public init(client: PostgresClient, requestTimeout: Duration = .seconds(2), capacity: Int = 100_000, logger: Logger)
    {
        self.client = client
        self.requestTimeout = requestTimeout
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

    /// Appends `entries` in one transaction, chained after the newest record.
    private func write(_ entries: [AuditEntry]) async -> Result<Void, PostgresStoreError> {
        do {
            try await withTimeout(requestTimeout) { [client, logger] in
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                    // A batch retried after an answer was lost may be stored already: each record is kept once.
                    var stored: Set<String> = []
                    for try await id in try await connection.query(
                        "SELECT entry_id FROM agent_payments_audit WHERE entry_id = ANY(\(entries.map(\.id)))",
                        logger: logger
                    ).decode(String.self) {
                        stored.insert(id)
                    }
                    var last: (sequence: Int64, hash: String)?
                    for try await (sequence, hash) in try await connection.query(
                        "SELECT seq, hash FROM agent_payments_audit ORDER BY seq DESC LIMIT 1", logger: logger
                    ).decode((Int64, String).self) {
                        last = (sequence, hash)
                    }
                    for entry in entries where stored.insert(entry.id).inserted {
                        let record = AuditRecord(entry: entry, after: last)
                        try await connection.query(
                            """
                            INSERT INTO agent_payments_audit (seq, entry_id, at_ms, replica, actor, action, outcome,
                                call_sid, payment_sid, origin, detail, prev_hash, hash)
                            VALUES (\(record.sequence), \(entry.id), \(entry.atMilliseconds), \(entry.replica), \(entry.actor),
                                \(entry.action), \(entry.outcome), \(entry.callSID), \(entry.paymentSID), \(entry.origin),
                                \(entry.detail), \(record.previousHash), \(record.hash))
                            """, logger: logger)
                        last = (record.sequence, record.hash)
                    }
                }
            }
            return .success(())
        } catch {
            return .failure(PostgresStoreError.from(error))
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
