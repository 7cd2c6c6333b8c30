public import Logging
public import PaymentFlow
public import PostgresNIO

/// The audit trail in PostgreSQL (`agent_payments_audit`, migration 4): one hash chain that
/// every replica appends to.
///
/// An append waits until its record is committed. Appends that arrive while a batch is being
/// written go together in the next one (group commit), so the chain's lock is taken once per
/// batch, not per record: in one transaction, `pg_advisory_xact_lock`, the newest record's
/// sequence and hash, then the batch's rows, each chained to the one before.
public actor PostgresAuditTrail: AuditTrail {
    /// The advisory lock that orders appends across replicas ("audit" in ASCII, distinct from
    /// the migrations' lock).
    static let lockKey: Int64 = 0x6175_6469_74

    let client: PostgresClient
    let requestTimeout: Duration
    let logger: Logger
    private var waiting: [(entry: AuditEntry, done: CheckedContinuation<Void, any Error>)] = []
    private var writing = false

    /// A trail on `client`, which must be running and migrated (``PostgresMigrations``).
    public init(client: PostgresClient, requestTimeout: Duration = .seconds(2), logger: Logger) {
        self.client = client
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    public func append(_ entry: AuditEntry) async throws(AuditTrailError) {
        if writing {
            // A writer is at work: it takes this record in its next batch.
            do {
                try await withCheckedThrowingContinuation { waiting.append((entry, $0)) }
                return
            } catch {
                throw AuditTrailError("the audit record was not kept: \(PostgresStoreError.from(error))")
            }
        }
        // No writer now: this append writes, its own record first, then whatever queued meanwhile,
        // until nothing waits (no task of its own is started).
        writing = true
        var own: Result<Void, PostgresStoreError>?
        var batch = [entry]
        var continuations: [CheckedContinuation<Void, any Error>] = []
        while !batch.isEmpty {
            let result = await write(batch)
            if own == nil { own = result }
            for done in continuations { done.resume(with: result.mapError { $0 as any Error }) }
            batch = waiting.map(\.entry)
            continuations = waiting.map(\.done)
            waiting.removeAll()
        }
        writing = false
        if case .failure(let error) = own {
            logger.error("audit record not kept", metadata: ["reason": "\(error)"])
            throw AuditTrailError("the audit record was not kept: \(error)")
        }
    }

    /// Appends `entries` in one transaction, chained after the newest record.
    private func write(_ entries: [AuditEntry]) async -> Result<Void, PostgresStoreError> {
        do {
            try await withTimeout(requestTimeout) { [client, logger] in
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                    var last: (sequence: Int64, hash: String)?
                    for try await (sequence, hash) in try await connection.query(
                        "SELECT seq, hash FROM agent_payments_audit ORDER BY seq DESC LIMIT 1", logger: logger
                    ).decode((Int64, String).self) {
                        last = (sequence, hash)
                    }
                    for entry in entries {
                        let record = AuditRecord(entry: entry, after: last)
                        try await connection.query(
                            """
                            INSERT INTO agent_payments_audit (seq, at_ms, replica, actor, action, outcome, call_sid,
                                payment_sid, origin, detail, prev_hash, hash)
                            VALUES (\(record.sequence), \(entry.atMilliseconds), \(entry.replica), \(entry.actor),
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
                SELECT seq, at_ms, replica, actor, action, outcome, call_sid, payment_sid, origin, detail, prev_hash, hash
                FROM agent_payments_audit ORDER BY seq
                """, logger: logger)
            for try await row in rows {
                let (sequence, at, replica, actor, action, outcome, call, payment, origin, detail, previous, hash) =
                    try row.decode(
                        (
                            Int64, Int64, String, String, String, String, String?, String?, String?, String?, String,
                            String
                        )
                        .self)
                var entry = AuditEntry(
                    replica: replica, actor: actor, action: action, outcome: outcome, callSID: call,
                    paymentSID: payment,
                    origin: origin, detail: detail)
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
