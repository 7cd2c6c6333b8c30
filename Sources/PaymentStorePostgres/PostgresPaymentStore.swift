import CoreMetrics
public import Foundation
public import Logging
public import PaymentFlow
public import PostgresNIO
import NIOCore
import NIOPosix
import Synchronization
public import TwilioPayments
import _ConnectionPoolModule

/// Why the PostgreSQL store could not do what was asked, in words free of payment data and
/// secrets (no query text, no URL, no password).
public enum PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The database is newer than this build: an older replica must not write to it.
    case schemaTooNew(found: Int, known: Int)
    /// The server could not be reached or dropped the connection; retryable.
    case unreachable(String)
    /// The server refused the statement (SQLSTATE and its message).
    case refused(sqlState: String, message: String)
    /// A stored row could not be read back.
    case unreadable(String)

    public var description: String {
        switch self {
        case .schemaTooNew(let found, let known):
            return
                "the database schema is at version \(found) but this build knows up to \(known); upgrade this replica"
        case .unreachable(let detail): return "PostgreSQL cannot be reached (\(detail))"
        case .refused(let state, let message): return "PostgreSQL refused the request (SQLSTATE \(state): \(message))"
        case .unreadable(let detail): return detail
        }
    }

    /// The error as operators and the flow should see it.
    static func from(_ error: any Error) -> PostgresStoreError {
        if let error = error as? PostgresStoreError { return error }
        if let error = error as? PostgresTransactionError {
            // What failed first: the closure's own error, else BEGIN, COMMIT or ROLLBACK.
            if let inner = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError {
                return from(inner)
            }
            return .unreachable("the transaction failed")
        }
        if let error = error as? PSQLError {
            if error.code == .server, let info = error.serverInfo {
                let state = info[.sqlState] ?? "?"
                // Class 57, operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03
                // cannot connect now): the server is going away or not there yet, which is being
                // out of reach, not a refusal of this request; it is worth a retry.
                if state.hasPrefix("57P") {
                    return .unreachable("the server is shutting down or starting (SQLSTATE \(state))")
                }
                return .refused(sqlState: state, message: info[.message] ?? "no message")
            }
            switch error.code {
            case .connectionError: return .unreachable("the connection failed")
            case .serverClosedConnection: return .unreachable("the server closed the connection")
            case .clientClosedConnection, .poolClosed: return .unreachable("the connection pool is closed")
            default: return .unreachable(error.code.description)
            }
        }
        if let error = error as? ConnectionPoolError {
            switch error {
            case .connectionCreationCircuitBreakerTripped:
                return .unreachable("no connection could be opened for a while")
            case .poolShutdown: return .unreachable("the connection pool is shut down")
            default: return .unreachable("the request for a connection was cancelled")
            }
        }
        if error is PostgresDecodingError { return .unreadable("a stored row has an unexpected type") }
        if error is CancellationError { return .unreachable("the request was cancelled") }
        return .unreachable(String(describing: type(of: error)))
    }
}

/// Runs `request`, failing it as ``PostgresStoreError/unreachable(_:)`` after `timeout` on `clock`: the
/// connection pool would otherwise keep a request waiting for a connection for a minute while
/// the server is away.
///
/// The caller is answered at the deadline (or when it is cancelled) even if `request` has not
/// ended: `request` runs in a task of its own, is cancelled then and left to finish alone.
/// PostgresNIO 1.33.2 drops a query written to a connection that has just closed, without
/// failing it (`PostgresConnection.query` writes with no promise), and does not end a query on
/// cancellation, so such a request never ends; a structured race would wait for it forever (the
/// audit writer did, after a server's shutdown between two statements of a transaction).
func withTimeout<T: Sendable>(
    _ timeout: Duration, on clock: any Clock<Duration> = ContinuousClock(),
    _ request: @escaping @Sendable () async throws -> T
) async throws -> T {
    let answer = FirstAnswer<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let work = Task {
                do { answer.give(.success(try await request())) } catch { answer.give(.failure(error)) }
            }
            let stop = startDeadline(timeout, on: clock) { answer.give(.failure($0)) }
            answer.wait(continuation, cancelling: [work], onAnswer: stop)
        }
    } onCancel: {
        answer.give(.failure(CancellationError()))
    }
}

/// Calls `expire` with ``PostgresStoreError/unreachable(_:)`` once `timeout` has passed on
/// `clock`; returns what stops it.
func startDeadline(
    _ timeout: Duration, on clock: any Clock<Duration>, _ expire: @escaping @Sendable (any Error) -> Void
) -> @Sendable () -> Void {
    let expired: @Sendable () -> Void = { expire(PostgresStoreError.unreachable("no answer within \(timeout)")) }
    if clock is ContinuousClock {
        // The common case, a timer on an event loop (this one, under NIO's executor): a
        // sleeping task per request cost ~10 % of the CPU of thousands of callbacks a
        // second (a task, a dispatch timer armed and cancelled; Docs/benchmarks.md).
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        let timer = loop.scheduleTask(in: TimeAmount(timeout)) { expired() }
        return { timer.cancel() }
    }
    let timer = Task {
        guard (try? await clock.sleep(for: timeout)) != nil else { return }
        expired()
    }
    return { timer.cancel() }
}

/// The first of several answers, given once to one waiting continuation; the tasks that could
/// still give one are cancelled then.
final class FirstAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var onAnswer: (@Sendable () -> Void)?
        var given = false
    }
    private let state = Mutex(State())

    /// Waits with `continuation`, which is resumed at once if an answer came first; `tasks` are
    /// cancelled and `onAnswer` runs once there is an answer.
    func wait(
        _ continuation: CheckedContinuation<T, any Error>, cancelling tasks: [Task<Void, Never>],
        onAnswer: (@Sendable () -> Void)? = nil
    ) {
        let early: Result<T, any Error>? = state.withLock { state in
            state.tasks = tasks
            state.onAnswer = onAnswer
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return early
        }
        if let early {
            for task in tasks { task.cancel() }
            onAnswer?()
            continuation.resume(with: early)
        }
    }

    /// Gives `result` unless an answer was given already.
    func give(_ result: Result<T, any Error>) {
        let waiting: (CheckedContinuation<T, any Error>, [Task<Void, Never>], (@Sendable () -> Void)?)? =
            state.withLock { state in
                guard !state.given else { return nil }
                state.given = true
                guard let continuation = state.continuation else {
                    state.early = result
                    return nil
                }
                state.continuation = nil
                defer {
                    state.tasks = []
                    state.onAnswer = nil
                }
                return (continuation, state.tasks, state.onAnswer)
            }
        guard let (continuation, tasks, onAnswer) = waiting else { return }
        for task in tasks { task.cancel() }
        onAnswer?()
        continuation.resume(with: result)
    }
}

/// Payment sessions in PostgreSQL, shared by every replica that uses the same database: the
/// ``PaymentStore`` of `agent-payments` when `DATABASE_URL` is set.
///
/// Each session is one row of `agent_payments_sessions`: its masked snapshot (jsonb, the
/// format of ``PaymentSession/storageJSON()``) beside the columns it is found by (payment SID,
/// call SID, callback secret hash), its version, its in-flight idempotency keys, and when it
/// was created, updated and last changed. Every write is one statement, so one transaction:
/// the compare-and-set on the version and a `NOTIFY` on ``PostgresChangeFeed/channel`` with
/// the session's id and version (never payment data), delivered when it commits. A partial
/// unique index keeps one unfinished session per call. Values are masked again on the way in
/// and out, as ``InMemoryPaymentStore`` does.
public final class PostgresPaymentStore: PaymentOutboxStore, Sendable {
    let client: PostgresClient
    let logger: Logger
    /// How long one request may take before it fails as unreachable.
    let requestTimeout: Duration
    /// The clock ``requestTimeout`` is measured on.
    let clock: any Clock<Duration>
    /// The compare-and-sets without outbox messages (every callback's), grouped into statements.
    private let group: GroupCommit<UpdateSession>
    /// Writes sent and not yet answered: this process's change feeds skip re-reading them.
    let ownWrites = OwnWrites()

    /// How many grouped compare-and-set statements may run at once. One: PostgreSQL commits
    /// notifying transactions one at a time anyway, and what arrives meanwhile makes the next
    /// statement bigger (PostgresBenchmark, alternating runs: one 4,037 / 4,050 callbacks/s at
    /// p99 7.4 / 6.7 ms, two 3,780 / 3,289, three 3,194 / 3,139).
    public static let groupStatementsRunning = 1
    /// The most compare-and-sets in one statement.
    public static let groupLargest = 64

    /// A store on `client`, which must be running (``PostgresPaymentDatabase`` runs it) and
    /// migrated (``PostgresMigrations``).
    /// A request fails as unreachable after `requestTimeout`, measured on `clock`.
    public init(
        client: PostgresClient, requestTimeout: Duration = .seconds(2), clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger
    ) {
        self.client = client
        self.requestTimeout = requestTimeout
        self.clock = clock
        self.logger = logger
        self.group = GroupCommit(
            maxRunning: Self.groupStatementsRunning, maxBatch: Self.groupLargest, key: \.id,
            deadline: { startDeadline(requestTimeout, on: clock, $0) }
        ) { [client, logger] updates in
            try await withTimeout(requestTimeout, on: clock) {
                try await Self.storeTogether(updates, client: client, logger: logger)
            }
        }
    }

    /// Grouped compare-and-set statements run, the writes they carried, and the most in one
    /// (benchmarks and operators: writes ÷ statements is how much group commit saved).
    public var groupCommitStatistics: (statements: Int, writes: Int, largest: Int) { group.statistics }

    /// One statement for `updates` (one alone as ``UpdateSession``): which were stored. When the
    /// statement is refused (a payment SID another session holds, a deadlock with another
    /// replica), nothing of it was stored, and each write is tried alone so that only its own
    /// refusal or failure is its caller's: a payment SID taken is a lost compare-and-set, like
    /// any conflict, and any other failure that write's error. A failure of the whole statement
    /// (the connection lost, no answer in time) is every write's, as it would be for one alone.
    static func storeTogether(
        _ updates: [UpdateSession], client: PostgresClient, logger: Logger
    ) async throws -> GroupCommit<UpdateSession>.Outcome {
        func alone(_ update: UpdateSession) async throws -> Bool {
            var stored = false
            for try await _ in try await client.execute(update, logger: logger) { stored = true }
            return stored
        }
        var outcome = GroupCommit<UpdateSession>.Outcome()
        if updates.count == 1 {
            if try await alone(updates[0]) { outcome.stored.insert(updates[0].id) }
            return outcome
        }
        do {
            for try await id in try await client.execute(UpdateSessions(updates), logger: logger) {
                outcome.stored.insert(id)
            }
            return outcome
        } catch {
            guard case .refused = PostgresStoreError.from(error) else { throw error }
            for update in updates {
                do {
                    if try await alone(update) { outcome.stored.insert(update.id) }
                } catch {
                    if case .refused("23505", _) = PostgresStoreError.from(error) { continue }
                    outcome.failed[update.id] = error
                }
            }
            return outcome
        }
    }

    /// Runs `request`, failing it as unreachable after ``requestTimeout`` (the pool's wait for a
    /// connection is cancelled then; a query in flight on a dead connection fails with it), or,
    /// not `timed`, as it is (a request that bounds its wait itself, as the group commit does).
    /// Counted by `operation` (`read`, `write`, `expire`) and result (`ok`, `unreachable`,
    /// `refused`, `unreadable`, `other`) in `agent_payments_store_requests_total`, with its latency in
    /// `agent_payments_store_request_duration_seconds` (swift-metrics, no backend chosen here).
    func bounded<T: Sendable>(
        _ operation: String, timed: Bool = true, _ request: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        var result = "ok"
        defer {
            let took = ContinuousClock.now - start
            Counter(
                label: "agent_payments_store_requests_total",
                dimensions: [("operation", operation), ("result", result)]
            ).increment()
            CoreMetrics.Timer(
                label: "agent_payments_store_request_duration_seconds", dimensions: [("operation", operation)]
            )
            .recordNanoseconds(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
        }
        do {
            return timed ? try await withTimeout(requestTimeout, on: clock, request) : try await request()
        } catch {
            switch PostgresStoreError.from(error) {
            case .unreachable: result = "unreachable"
            case .refused: result = "refused"
            case .unreadable: result = "unreadable"
            default: result = "other"
            }
            throw error
        }
    }

    public func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
        try await one(SessionByPaymentSID(key: paymentSID.rawValue))
    }

    public func session(id: String) async throws(PaymentStoreError) -> PaymentSession? {
        try await one(SessionByID(key: id))
    }

    public func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
        try await one(SessionBySecretHash(key: hash))
    }

    public func compareAndSet(
        _ session: PaymentSession, expectedVersion: UInt64?
    ) async throws(PaymentStoreError) -> Bool {
        try await compareAndSet(session, expectedVersion: expectedVersion, messages: [])
    }

    /// One statement, so one transaction: the compare-and-set, the `NOTIFY`, and `messages`
    /// appended to `agent_payments_outbox` (only when the session is stored).
    public func compareAndSet(
        _ session: PaymentSession, expectedVersion: UInt64?, messages: [OutboxMessage]
    ) async throws(PaymentStoreError) -> Bool {
        let clean = session.sanitized()
        // This process's feeds hear of the write from PostgreSQL too: they skip re-reading it.
        let own = OwnWrites.Key(id: clean.id, version: clean.version)
        ownWrites.began(own)
        var stored = false
        defer { ownWrites.ended(own, stored: stored ? clean : nil) }
        stored = try await write(clean, expectedVersion: expectedVersion, messages: messages)
        return stored
    }

    /// The compare-and-set of `clean` (masked already), with its outbox `messages`.
    private func write(
        _ clean: PaymentSession, expectedVersion: UInt64?, messages: [OutboxMessage]
    ) async throws(PaymentStoreError) -> Bool {
        do {
            if let expectedVersion {
                // The hot path (every callback, every step): prepared once per connection.
                let update = Self.update(clean: clean, expectedVersion: expectedVersion)
                if messages.isEmpty {
                    // The group bounds the caller's wait itself (no task of its own per write).
                    return try await bounded("write", timed: false) { [group] in try await group.submit(update) }
                }
                return try await bounded("write") { [client, logger] in
                    var stored = false
                    for try await _ in try await client.execute(
                        UpdateSessionQueuing(update: update, messages: messages), logger: logger)
                    {
                        stored = true
                    }
                    return stored
                }
            }
            let json = String(decoding: clean.storageJSON(), as: UTF8.self)
            let inFlight = Self.inFlightJSON(clean)
            let sid = clean.paymentSID?.rawValue
            let version = Int64(clean.version)
            var query: PostgresQuery = """
                WITH changed AS (
                    INSERT INTO agent_payments_sessions (id, payment_sid, call_sid, callback_secret_hash, phase, finished, version,
                        in_flight, session, created_at, updated_at, change_seq, changed_at)
                    VALUES (\(clean.id), \(sid), \(clean.callSID.rawValue), \(clean.callbackSecretHash), \(clean.phase.name),
                        \(clean.phase.isFinished), \(version), \(inFlight)::jsonb, \(json)::jsonb, \(clean.createdAt), \(clean.updatedAt),
                        nextval('agent_payments_change_seq'), clock_timestamp())
                    ON CONFLICT DO NOTHING
                    RETURNING id, version, change_seq)
                """
            if !messages.isEmpty { Self.appendOutbox(messages, to: &query) }
            query.sql += UpdateSession.notify
            return try await bounded("write") { [client, logger, query] in
                var stored = false
                for try await _ in try await client.query(query, logger: logger) { stored = true }
                return stored
            }
        } catch {
            let failure = PostgresStoreError.from(error)
            // Another session already holds this payment SID: refused, like any conflict.
            if case .refused(let state, _) = failure, state == "23505" { return false }
            throw PaymentStoreError(failure.description)
        }
    }

    /// The compare-and-set of `session` (masked again) over `expectedVersion`.
    static func update(_ session: PaymentSession, expectedVersion: UInt64) -> UpdateSession {
        update(clean: session.sanitized(), expectedVersion: expectedVersion)
    }

    /// The compare-and-set of `clean`, masked already, over `expectedVersion`.
    static func update(clean: PaymentSession, expectedVersion: UInt64) -> UpdateSession {
        UpdateSession(
            paymentSID: clean.paymentSID?.rawValue, callbackSecretHash: clean.callbackSecretHash,
            phase: clean.phase.name, finished: clean.phase.isFinished, version: Int64(clean.version),
            inFlight: inFlightJSON(clean), session: String(decoding: clean.storageJSON(), as: UTF8.self),
            updatedAt: clean.updatedAt, id: clean.id, expectedVersion: Int64(expectedVersion))
    }

    /// Adds `, queued AS (INSERT …)` after the `changed` CTE: the messages in their order (their
    /// sequence numbers follow it), written only if `changed` returned the session. Every
    /// data-modifying CTE runs to completion whether or not the final SELECT reads it.
    static func appendOutbox(_ messages: [OutboxMessage], to query: inout PostgresQuery) {
        query.sql += outboxCTE(firstParameter: query.binds.count + 1)
        query.binds.append(messages.map(\.destination))
        query.binds.append(messages.map(\.id))
        query.binds.append(messages.map(\.payment))
        query.binds.append(messages.map(\.type))
        query.binds.append(messages.map { String(decoding: $0.body, as: UTF8.self) })
    }

    /// The `queued` CTE of ``appendOutbox(_:to:)``, its five arrays from parameter `first` on.
    static func outboxCTE(firstParameter first: Int) -> String {
        """
        , queued AS (
            INSERT INTO agent_payments_outbox (destination, event_id, payment_id, type, body)
            SELECT m.destination, m.event_id, m.payment_id, m.type, m.body
            FROM changed, unnest($\(first)::text[], $\(first + 1)::text[], $\(first + 2)::text[], $\(first + 3)::text[], $\(first + 4)::text[])
                WITH ORDINALITY AS m(destination, event_id, payment_id, type, body, position)
            ORDER BY m.position
            ON CONFLICT (destination, event_id) DO NOTHING)
        """
    }

    public func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] {
        try await many("SELECT session::text FROM agent_payments_sessions WHERE NOT finished ORDER BY created_at")
    }

    public func activeSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession] {
        try await many(
            "SELECT session::text FROM agent_payments_sessions WHERE NOT finished AND updated_at < \(date) ORDER BY created_at"
        )
    }

    public func startingSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession] {
        try await many(
            "SELECT session::text FROM agent_payments_sessions WHERE NOT finished AND phase = 'starting' AND updated_at < \(date) ORDER BY created_at"
        )
    }

    /// From the columns: the sessions' snapshots are neither sent nor decoded.
    public func idleSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [IdleSession] {
        let rows = try await all(
            """
            SELECT id, payment_sid, call_sid, updated_at FROM agent_payments_sessions
            WHERE NOT finished AND updated_at < \(date) ORDER BY updated_at
            """, as: (String, String?, String, Date).self)
        var idle: [IdleSession] = []
        idle.reserveCapacity(rows.count)
        for (id, paymentSID, callSID, updatedAt) in rows {
            guard let call = CallSID(callSID) else {
                throw PaymentStoreError("a stored payment session has an invalid call SID")
            }
            var sid: PaymentSID?
            if let paymentSID {
                guard let valid = PaymentSID(paymentSID) else {
                    throw PaymentStoreError("a stored payment session has an invalid payment SID")
                }
                sid = valid
            }
            idle.append(IdleSession(id: id, paymentSID: sid, callSID: call, updatedAt: updatedAt))
        }
        return idle
    }

    public func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
        try await many(
            "SELECT session::text FROM agent_payments_sessions WHERE call_sid = \(callSID.rawValue) ORDER BY created_at DESC"
        )
    }

    public func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
        do {
            return try await bounded("expire") { [client, logger] in
                var count = 0
                for try await _ in try await client.query(
                    "DELETE FROM agent_payments_sessions WHERE finished AND updated_at < \(date) RETURNING 1",
                    logger: logger)
                {
                    count += 1
                }
                return count
            }
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
    }

    // MARK: Reading

    private func one(_ lookup: some SessionLookup) async throws(PaymentStoreError) -> PaymentSession? {
        let text: String?
        do {
            text = try await bounded("read") { [client, logger] in
                // The first row, the answer read to its end (ids and payment SIDs are unique; a
                // secret's hash is a SHA-256 of a secret of its own) before the connection goes back.
                var first: String?
                for try await text in try await client.execute(lookup, logger: logger) where first == nil {
                    first = text
                }
                return first
            }
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
        guard let text else { return nil }
        do {
            return try PaymentSession(storageJSON: text)
        } catch {
            throw PaymentStoreError(error.description)
        }
    }

    /// Every row of `query`, decoded as `columns`, within the request bound; a database that
    /// cannot answer is a ``PaymentStoreError``.
    func all<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, as columns: (repeat each Column).Type
    ) async throws(PaymentStoreError) -> [(repeat each Column)] {
        do {
            return try await bounded("read") { [client, logger] in
                var rows: [(repeat each Column)] = []
                for try await row in try await client.query(query, logger: logger).decode(columns) {
                    rows.append(row)
                }
                return rows
            }
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
    }

    func many(_ query: PostgresQuery) async throws(PaymentStoreError) -> [PaymentSession] {
        let texts = try await all(query, as: String.self)
        var sessions: [PaymentSession] = []
        sessions.reserveCapacity(texts.count)
        for text in texts {
            do {
                sessions.append(try PaymentSession(storageJSON: text))
            } catch {
                throw PaymentStoreError(error.description)
            }
        }
        return sessions
    }

    /// The in-flight idempotency keys as a JSON object (`{"capture:payment-card-number": "…"}`),
    /// for operators reading the table; the snapshot carries them too.
    /// Written here, keys sorted (Foundation's `JSONSerialization` was ~1 % of the CPU of a
    /// callback into PostgreSQL); the column is `jsonb`, so only the meaning is stored.
    static func inFlightJSON(_ session: PaymentSession) -> String {
        guard !session.inFlight.isEmpty else { return "{}" }
        var json = "{"
        let entries = session.inFlight.map { ($0.key.storageName, $0.value) }.sorted { $0.0 < $1.0 }
        for (index, (key, value)) in entries.enumerated() {
            if index > 0 { json += "," }
            appendJSONString(key, to: &json)
            json += ":"
            appendJSONString(value, to: &json)
        }
        return json + "}"
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    static func appendJSONString(_ text: String, to json: inout String) {
        json += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            case "\n": json += "\\n"
            case "\r": json += "\\r"
            case "\t": json += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                json += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: json.unicodeScalars.append(scalar)
            }
        }
        json += "\""
    }
}
