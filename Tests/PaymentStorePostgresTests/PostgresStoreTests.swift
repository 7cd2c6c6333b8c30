import Foundation
import Logging
@testable import PaymentFlow
import PaymentStorePostgres
import PaymentsTestSupport
import PostgresNIO
import Synchronization
import Testing
import TwilioPayments

enum Sample {
    static let date = Date(timeIntervalSince1970: 1_800_000_000)
    static func call(_ n: Int) -> CallSID { CallSID(validated: "CA" + String(format: "%032x", n)) }
    static func payment(_ n: Int) -> PaymentSID { PaymentSID(validated: "PK" + String(format: "%032x", n)) }

    /// An active card session on call `n`, with payment SID `n`.
    static func session(_ n: Int, secretHash: String? = nil) -> PaymentSession {
        let fresh = PaymentSession(
            callSID: call(n), configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "9.99")),
            at: date, callbackSecretHash: secretHash ?? String(format: "%064x", n))
        return PaymentReducer.reduce(fresh, .sessionCreated(payment(n), at: date)).session
    }

    static func callback(_ fields: [String: String], sid: PaymentSID, call: CallSID) -> PaymentStatusCallback {
        var all = fields
        all["Sid"] = sid.rawValue
        all["CallSid"] = call.rawValue
        return PaymentStatusCallback(fields: all.sorted { $0.key < $1.key })
    }
}

/// Waits for the first element of `stream` that `accept` takes, up to `timeout`.
func first(
    _ stream: AsyncStream<PaymentSession>, within timeout: Duration = .seconds(30),
    where accept: @escaping @Sendable (PaymentSession) -> Bool
) async -> PaymentSession? {
    await withTaskGroup(of: PaymentSession?.self) { group in
        group.addTask {
            for await session in stream where accept(session) { return session }
            return nil
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let found = await group.next() ?? nil
        group.cancelAll()
        return found
    }
}

@Suite(.postgreSQL) struct PostgresMigrationTests {
    @Test func migrationsApplyOnceFromEmptyAndAgainFindNothingToDo() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                // prepare() has migrated already: a second run applies nothing.
                #expect(try await database.migrate() == [])
                let rows = try await database.client.query(
                    "SELECT version FROM agent_payments_schema_migrations ORDER BY version")
                var versions: [Int] = []
                for try await version in rows.decode(Int.self) { versions.append(version) }
                #expect(versions == PostgresMigrations.all.map(\.version))
            }
        }
    }

    @Test func replicasMigratingTogetherApplyEachMigrationOnce() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            let configuration = try PostgresDatabaseConfiguration(url: url)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let replicas = (0..<4).map { _ in PostgresPaymentDatabase(configuration: configuration, logger: logger) }
            let runs = replicas.map { replica in Task { await replica.client.run() } }
            defer { runs.forEach { $0.cancel() } }
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for replica in replicas { group.addTask { try await replica.migrate() } }
                var all: [[Int]] = []
                for try await versions in group { all.append(versions) }
                return all
            }
            #expect(
                applied.filter { !$0.isEmpty } == [PostgresMigrations.all.map(\.version)],
                "one replica applied them: \(applied)")
        }
    }

    @Test func aSchemaNewerThanThisBuildIsRefused() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                try await database.client.query(
                    "INSERT INTO agent_payments_schema_migrations (version, name) VALUES (999, 'from the future')")
                await #expect(
                    throws: PostgresStoreError.schemaTooNew(found: 999, known: PostgresMigrations.latestVersion)
                ) {
                    try await database.migrate()
                }
            }
        }
    }

    @Test func everyReplicaGetsTheSameCallbackKey() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { a async throws in
                try await withRunningDatabase(url) { b async throws in
                    // Each read retried while a loaded machine keeps it past its 2 s bound, as prepare does.
                    func key(_ database: PostgresPaymentDatabase) async throws -> Secret {
                        let deadline = ContinuousClock.now + .seconds(30)
                        while true {
                            do {
                                return try await database.sharedCallbackKey()
                            } catch {
                                guard case .unreachable = error, ContinuousClock.now < deadline else { throw error }
                            }
                        }
                    }
                    let keys = [try await key(a), try await key(b), try await key(a)]
                    #expect(Set(keys.map(\.revealed)).count == 1)
                    #expect(keys[0].revealed.count == 64)
                    // Each database is its coordinator's key source: the same key, read once and kept.
                    #expect(try await a.callbackKey().revealed == keys[0].revealed)
                    #expect(try await b.callbackKey().revealed == keys[0].revealed)
                }
            }
        }
    }
}

@Suite(.postgreSQL) struct PostgresPaymentStoreTests {
    @Test func aStoredSessionIsFoundByIdPaymentSIDSecretHashAndCall() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let store = database.store
                let session = Sample.session(1)
                #expect(try await store.compareAndSet(session, expectedVersion: nil))
                #expect(try await store.session(id: session.id) == session)
                #expect(try await store.session(Sample.payment(1)) == session)
                #expect(try await store.session(callbackSecretHash: session.callbackSecretHash) == session)
                #expect(try await store.sessions(onCall: Sample.call(1)) == [session])
                #expect(try await store.activeSessions() == [session])
                // The sweeps' query: unfinished and last changed before the date (strictly).
                #expect(
                    try await store.activeSessions(updatedBefore: session.updatedAt.addingTimeInterval(1)) == [session])
                #expect(try await store.activeSessions(updatedBefore: session.updatedAt).isEmpty)
                #expect(try await store.session(Sample.payment(2)) == nil)
                #expect(try await store.session(callbackSecretHash: String(repeating: "0", count: 64)) == nil)
            }
        }
    }

    @Test func theSweepsReadsAnswerAsTheProtocolsDefaultsFromTheColumns() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let store = database.store
                // Starting (changed at a time the column rounds to microseconds), active and
                // older, active and a minute newer, finished and oldest.
                let starting = PaymentSession(
                    callSID: Sample.call(10),
                    configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "1.00")),
                    at: Sample.date.addingTimeInterval(0.123_456_789), callbackSecretHash: String(format: "%064x", 10))
                let active = Sample.session(11)
                var recent = Sample.session(12)
                recent.updatedAt = Sample.date.addingTimeInterval(60)
                var finished = Sample.session(13)
                finished.phase = .cancelled(reason: "test")
                finished.updatedAt = Sample.date.addingTimeInterval(-20)
                for session in [starting, active, recent, finished] {
                    #expect(try await store.compareAndSet(session, expectedVersion: nil))
                }
                let oracle = DefaultReadsStore(store)
                let cutoff = Sample.date.addingTimeInterval(30)
                #expect(try await store.startingSessions(updatedBefore: cutoff).map(\.id) == [starting.id])
                #expect(try await oracle.startingSessions(updatedBefore: cutoff).map(\.id) == [starting.id])
                #expect(try await store.startingSessions(updatedBefore: Sample.date).isEmpty, "strictly before")
                let idle = try await store.idleSessions(updatedBefore: cutoff)
                let expected = try await oracle.idleSessions(updatedBefore: cutoff)
                #expect(idle.map(\.id) == [active.id, starting.id], "least recently changed first")
                #expect(expected.map(\.id) == idle.map(\.id))
                for (read, derived) in zip(idle, expected) {
                    #expect(read.paymentSID == derived.paymentSID && read.callSID == derived.callSID)
                    #expect(abs(read.updatedAt.timeIntervalSince(derived.updatedAt)) < 0.000_001)
                }
                #expect(idle[0].paymentSID == Sample.payment(11) && idle[1].paymentSID == nil)
                #expect(try await store.idleSessions(updatedBefore: Sample.date).isEmpty, "strictly before")
            }
        }
    }

    @Test func compareAndSetLetsExactlyOneOfTwoWritersWin() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    let session = Sample.session(2)
                    #expect(try await a.store.compareAndSet(session, expectedVersion: nil))
                    #expect(try await !b.store.compareAndSet(session, expectedVersion: nil), "the id is taken")
                    // Both replicas read version v and write v+1 at once: one wins.
                    for round in 0..<20 {
                        let current = try #require(try await a.store.session(id: session.id))
                        var mine = current, theirs = current
                        mine.lastRequestError = "a \(round)"
                        theirs.lastRequestError = "b \(round)"
                        mine.version += 1
                        theirs.version += 1
                        let (ours, others) = (mine, theirs)
                        async let first = a.store.compareAndSet(ours, expectedVersion: current.version)
                        async let second = b.store.compareAndSet(others, expectedVersion: current.version)
                        let outcomes = try await [first, second]
                        #expect(outcomes.filter { $0 }.count == 1, "round \(round): \(outcomes)")
                        let stored = try #require(try await b.store.session(id: session.id))
                        #expect(stored.version == current.version + 1)
                        #expect(stored == (outcomes[0] ? mine : theirs))
                    }
                    var stale = try #require(try await a.store.session(id: session.id))
                    stale.version += 1
                    #expect(
                        try await !a.store.compareAndSet(stale, expectedVersion: stale.version - 2),
                        "an old version is refused")
                }
            }
        }
    }

    /// Group commit: writes that arrive together share statements, and each is still decided as
    /// if sent alone (one winner per version; a refusal fails only its own write).
    @Test func concurrentCompareAndSetsGoTogetherYetEachIsDecidedAlone() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    let changes = b.feed.subscribe()
                    let sessions = (100..<140).map { Sample.session($0) }
                    for session in sessions { #expect(try await a.store.compareAndSet(session, expectedVersion: nil)) }
                    let before = a.store.groupCommitStatistics
                    // Four writers per session at once, all from the version stored. Session 1's
                    // writers all take session 0's payment SID, which the unique index refuses:
                    // a statement holding one of them fails, and its other writes are tried alone.
                    let outcomes = try await withThrowingTaskGroup(of: (Int, Int, Bool).self) { group in
                        for (index, session) in sessions.enumerated() {
                            for writer in 0..<4 {
                                var next = session
                                next.version += 1
                                next.lastRequestError = "writer \(writer)"
                                if index == 1 { next.paymentSID = sessions[0].paymentSID }
                                let write = next
                                group.addTask {
                                    (
                                        index, writer,
                                        try await a.store.compareAndSet(write, expectedVersion: session.version)
                                    )
                                }
                            }
                        }
                        var all: [(Int, Int, Bool)] = []
                        for try await outcome in group { all.append(outcome) }
                        return all
                    }
                    for (index, session) in sessions.enumerated() {
                        let won = outcomes.filter { $0.0 == index && $0.2 }.map(\.1)
                        let stored = try #require(try await b.store.session(id: session.id))
                        if index == 1 {
                            #expect(won.isEmpty, "a payment SID another session holds")
                            #expect(stored == session)
                        } else {
                            #expect(won.count == 1, "session \(index): \(won)")
                            #expect(stored.version == session.version + 1)
                            #expect(stored.lastRequestError == won.first.map { "writer \($0)" })
                        }
                    }
                    let after = a.store.groupCommitStatistics
                    #expect(after.writes - before.writes == 160)
                    #expect(after.statements - before.statements < 160, "no two writes went together")
                    #expect(after.largest > 1)
                    // The other replica hears every stored version.
                    let wanted = Dictionary(
                        uniqueKeysWithValues: sessions.indices.filter { $0 != 1 }.map {
                            (sessions[$0].id, sessions[$0].version + 1)
                        })
                    let heard = Mutex<Set<String>>([])
                    let listening = Task {
                        for await change in changes where wanted[change.id] == change.version {
                            _ = heard.withLock { $0.insert(change.id) }
                        }
                    }
                    let deadline = ContinuousClock.now + .seconds(30)
                    while heard.withLock({ $0.count < wanted.count }), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    listening.cancel()
                    #expect(heard.withLock { $0 } == Set(wanted.keys))
                }
            }
        }
    }

    @Test func oneUnfinishedSessionPerCallAcrossReplicas() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    let first = Sample.session(3)
                    var second = PaymentSession(
                        callSID: Sample.call(3), configuration: PaymentConfiguration(), at: Sample.date,
                        callbackSecretHash: String(repeating: "c", count: 64))
                    #expect(try await a.store.compareAndSet(first, expectedVersion: nil))
                    #expect(
                        try await !b.store.compareAndSet(second, expectedVersion: nil),
                        "the call has an unfinished session")
                    let cancelled = PaymentReducer.reduce(first, .callEnded(at: Sample.date, status: "completed"))
                        .session
                    #expect(try await a.store.compareAndSet(cancelled, expectedVersion: first.version))
                    second.version = 1
                    #expect(try await b.store.compareAndSet(second, expectedVersion: nil), "the first has finished")
                    #expect(
                        try await a.store.sessions(onCall: Sample.call(3)).map(\.id).sorted()
                            == [first.id, second.id].sorted())
                    #expect(try await a.store.activeSessions().map(\.id) == [second.id])
                }
            }
        }
    }

    @Test func cardDataNeverReachesTheDatabase() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                var leaky = Sample.session(4)
                leaky.items[.cardNumber] = ItemProgress()
                leaky.items[.cardNumber]?.state = .captured(masked: "4111111111111111")
                #expect(try await database.store.compareAndSet(leaky, expectedVersion: nil))
                let rows = try await database.client.query(
                    "SELECT session::text || in_flight::text FROM agent_payments_sessions")
                var text = ""
                for try await row in rows.decode(String.self) { text += row }
                #expect(text.contains("xxxxxxxxxxxx1111") && !text.contains("4111111111111111"))
                #expect(try await database.store.session(id: leaky.id)?.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111")
            }
        }
    }

    @Test func finishedSessionsExpireBySQLAndActiveOnesStay() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let active = Sample.session(5)
                let done = PaymentReducer.reduce(Sample.session(6), .callEnded(at: Sample.date, status: nil)).session
                #expect(try await database.store.compareAndSet(active, expectedVersion: nil))
                #expect(try await database.store.compareAndSet(done, expectedVersion: nil))
                #expect(
                    try await database.store.expireFinished(updatedBefore: Sample.date) == 0,
                    "not older than the cut-off")
                #expect(try await database.store.expireFinished(updatedBefore: Sample.date.addingTimeInterval(1)) == 1)
                #expect(try await database.store.session(id: done.id) == nil)
                #expect(try await database.store.session(id: active.id) == active)
            }
        }
    }
}

@Suite(.postgreSQL) struct PostgresChangeFeedTests {
    @Test func aWriteOnOneReplicaReachesAnotherReplicasSubscribers() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    let changes = b.feed.subscribe()
                    let session = Sample.session(7)
                    #expect(try await a.store.compareAndSet(session, expectedVersion: nil))
                    let heard = await first(changes) { $0.id == session.id }
                    #expect(heard == session)
                    var next = session
                    next.version = session.version + 1
                    next.cardType = "visa"
                    #expect(try await a.store.compareAndSet(next, expectedVersion: session.version))
                    let wanted = next.version
                    #expect(await first(changes) { $0.id == session.id && $0.version == wanted } == next)
                }
            }
        }
    }

    @Test func whatAReplicaPublishesItselfReachesItsSubscribersOnce() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let changes = database.feed.subscribe()
                let seen = Mutex<[UInt64]>([])
                let collector = Task {
                    for await session in changes { seen.withLock { $0.append(session.version) } }
                }
                defer { collector.cancel() }
                var session = Sample.session(8)
                for version in 1...5 {
                    session.version = UInt64(version)
                    #expect(
                        try await database.store.compareAndSet(
                            session, expectedVersion: version == 1 ? nil : UInt64(version - 1)))
                    database.feed.publish(session)
                }
                // A marker written by another writer, announced after the five: once it arrives, so have their announcements.
                let marker = Sample.session(9)
                try await withRunningDatabase(url, label: "other") { other async throws in
                    #expect(try await other.store.compareAndSet(marker, expectedVersion: nil))
                }
                let deadline = ContinuousClock.now + .seconds(30)
                while seen.withLock({ $0.count }) < 6, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(
                    seen.withLock { $0 } == [1, 2, 3, 4, 5, marker.version],
                    "each of its own versions once, then the marker")
            }
        }
    }

    @Test func aDroppedListenConnectionReconnectsAndCatchesUp() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    let changes = b.feed.subscribe()
                    let session = Sample.session(10)
                    #expect(try await a.store.compareAndSet(session, expectedVersion: nil))
                    #expect(await first(changes) { $0.id == session.id } != nil)
                    #expect(b.feed.statistics.connections == 1)
                    // End every LISTEN backend (an operator, a failover): both feeds lose their connection.
                    let killed = try await a.client.query(
                        """
                        SELECT count(pg_terminate_backend(pid))::bigint FROM pg_stat_activity
                        WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()
                        """)
                    var count: Int64 = 0
                    for try await n in killed.decode(Int64.self) { count = n }
                    #expect(count == 2, "one listening connection per replica")
                    // Written while b may be reconnecting: announced to nobody who listens. A pool
                    // connection of A's that the termination also hit (its last statement may have
                    // been a LISTEN) can lose this write unanswered (PostgreSQL cannot be reached):
                    // written again then, or found written. The feed's catching up is under test.
                    var next = session
                    next.version = session.version + 1
                    next.lastRequestError = "while away"
                    var written = false
                    for _ in 0..<3 where !written {
                        do {
                            written = try await a.store.compareAndSet(next, expectedVersion: session.version)
                            if !written { written = try await a.store.session(id: session.id) == next }
                        } catch {
                            continue
                        }
                    }
                    #expect(written)
                    let awaited = next.version
                    let heard = await first(changes, within: .seconds(20)) {
                        $0.id == session.id && $0.version == awaited
                    }
                    #expect(heard == next)
                    #expect(await b.feed.listening(waitingUpTo: .seconds(10)))
                    #expect(b.feed.statistics.connections >= 2)
                    // And it listens again: a later change is announced as usual.
                    var later = next
                    later.version = next.version + 1
                    #expect(try await a.store.compareAndSet(later, expectedVersion: next.version))
                    let last = later.version
                    #expect(await first(changes) { $0.id == session.id && $0.version == last } == later)
                }
            }
        }
    }
}

/// Two coordinators — two replicas — on one database: a payment started on one is driven by
/// callbacks and commands through the other.
@Suite(.postgreSQL) struct PostgresReplicaTests {
    let api = FakePaymentsAPI()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://payments.example.com/twilio/payment-callbacks/")

    func replica(_ database: PostgresPaymentDatabase, key: Secret) -> PaymentCoordinator {
        PaymentCoordinator(
            api: api, store: database.store, feed: database.feed, callbackURLs: callbacks, callbackKey: key)
    }

    @Test func aCallbackTakenByReplicaBWakesALongPollOnReplicaA() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { databaseA async throws in
                try await withRunningDatabase(url, label: "b") { databaseB async throws in
                    let key = try await databaseA.sharedCallbackKey()
                    let a = replica(databaseA, key: key),
                        b = replica(databaseB, key: try await databaseB.sharedCallbackKey())
                    let started = try await a.start(callSID: Sample.call(20), options: PaymentSessionOptions())
                    let sid = try #require(started.paymentSID)
                    let requested = try await b.capture(.cardNumber, paymentSID: sid)
                    // Both replicas derive the same URL for the session: the key is shared.
                    #expect(Set(api.statusCallbacks).count == 1)
                    let secret = String(try #require(api.statusCallbacks.last).split(separator: "/").last!)
                    let waiter = Task {
                        try await a.waitForChange(sid, afterVersion: requested.version, timeout: .seconds(30))
                    }
                    // Only once A's long poll is really waiting does B take the callback (else the
                    // poll would find the change already stored and prove nothing of waking).
                    let deadline = ContinuousClock.now + .seconds(20)
                    while await a.waiterCount(sid) == 0, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    #expect(await a.waiterCount(sid) == 1, "A's long poll is waiting")
                    #expect(
                        try await b.receiveCallback(
                            secret: secret,
                            Sample.callback(
                                [
                                    "Capture": "payment-card-number", "PartialResult": "false",
                                    "PaymentCardNumber": "xxxxxxxxxxxx4242",
                                    "Required": "security-code,expiration-date,postal-code",
                                ], sid: sid, call: Sample.call(20))))
                    let woken = try #require(try await waiter.value)
                    #expect(woken.maskedValue(.cardNumber) == "xxxxxxxxxxxx4242")
                    #expect(try await a.session(sid)?.version == woken.version)
                }
            }
        }
    }

    @Test func aRetryOnAnotherReplicaSendsTheStoredIdempotencyKey() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { databaseA async throws in
                try await withRunningDatabase(url, label: "b") { databaseB async throws in
                    let key = try await databaseA.sharedCallbackKey()
                    let a = replica(databaseA, key: key), b = replica(databaseB, key: key)
                    let started = try await a.start(callSID: Sample.call(21), options: PaymentSessionOptions())
                    let sid = try #require(started.paymentSID)
                    // Replica A stored the capture request with its key, then died before Twilio's answer was stored.
                    let stored = try #require(try await databaseA.store.session(sid))
                    let requested = PaymentReducer.reduce(
                        stored, .captureRequested(.cardNumber, at: Date(), idempotencyKey: "key-from-a")
                    ).session
                    #expect(try await databaseA.store.compareAndSet(requested, expectedVersion: stored.version))
                    // The agent retries on replica B: Twilio sees the same key, so does the work once.
                    let retried = try await b.capture(.cardNumber, paymentSID: sid)
                    #expect(api.calls.last?.operation == "capture:payment-card-number")
                    #expect(api.calls.last?.idempotencyKey == "key-from-a")
                    #expect(retried.inFlight[.capture(.cardNumber)] == nil, "answered: no longer in flight")
                }
            }
        }
    }
}

/// PostgreSQL stopped under a running store, then started again.
@Suite(.postgreSQL) struct PostgresOutageTests {
    @Test func requestsFailClearlyWhileTheServerIsAwayAndWorkAgainAfter() async throws {
        let cluster: ThrowawayCluster
        switch await ThrowawayCluster.start() {
        case .success(let started): cluster = started
        case .failure(let unavailable):
            unavailable.report()
            return
        }
        defer { Task { try? await cluster.stop() } }
        try await withRunningDatabase(cluster.url) { database async throws in
            let api = FakePaymentsAPI()
            let flow = PaymentCoordinator(
                api: api, store: database.store, feed: database.feed,
                callbackURLs: StaticCallbackURLProvider(baseURL: "https://payments.example.com/cb/"),
                callbackKey: database, // the shared key, read by prepare and kept: no request here
                audit: database.audit)
            let session = try await flow.start(callSID: Sample.call(30), options: PaymentSessionOptions())
            let sid = try #require(session.paymentSID)
            try await cluster.halt()

            // Refused by the store's own bound (the pool would queue the request for a minute).
            await #expect {
                _ = try await flow.capture(.cardNumber, paymentSID: sid)
            } throws: { error in
                guard let error = error as? FlowError, case .storeUnavailable(let reason) = error else { return false }
                return error.isRetryable
                    && reason.contains("PostgreSQL cannot be reached (no answer within 2.0 seconds)")
                    && !reason.contains(cluster.url)
            }
            // That bound is `requestTimeout` on the configuration's clock, not a moment more or less:
            // a replica of its own on a manual clock, asked while the server is away.
            let clock = ManualClock()
            var configuration = try PostgresDatabaseConfiguration(url: cluster.url)
            configuration.timeoutClock = clock
            let timed = PostgresPaymentDatabase(configuration: configuration, logger: Logger(label: "timed"))
            let running = Task { await timed.run() }
            /// `request`, started while the server is away, is refused at `requestTimeout` on the
            /// manual clock (its `sleepers` waiting on it), not a millisecond before.
            func refusedAtTheTimeout<T: Sendable>(
                sleepers: Int, _ request: @escaping @Sendable () async throws -> T
            ) async {
                let task = Task { try await request() }
                #expect(await clock.sleepers(atLeast: sleepers, waitingUpTo: .seconds(30)))
                clock.advance(by: configuration.requestTimeout - .milliseconds(1))
                #expect(clock.sleeperCount == sleepers, "not refused a millisecond before requestTimeout")
                clock.advance(by: .milliseconds(1))
                await #expect {
                    _ = try await task.value
                } throws: { error in
                    (error as? PaymentStoreError)?.reason.contains("no answer within \(configuration.requestTimeout)")
                        == true
                }
            }
            await refusedAtTheTimeout(sleepers: 1) { try await timed.store.session(sid) }
            // A compare-and-set too, though it waits in the group commit rather than in a task of
            // its own: the caller's deadline, and its statement's, on the same clock.
            await refusedAtTheTimeout(sleepers: 2) {
                try await timed.store.compareAndSet(Sample.session(31), expectedVersion: 1)
            }
            running.cancel()
            await running.value
            #expect(api.calls.count == 1, "nothing was sent to Twilio without a stored request")
            await #expect(throws: FlowError.self) {
                try await flow.receiveCallback(
                    secret: "0123456789abcdef0123456789abcdef",
                    Sample.callback([:], sid: sid, call: Sample.call(30)))
            }

            try await cluster.resume()
            let deadline = ContinuousClock.now + .seconds(20)
            var captured: PaymentSession?
            while captured == nil, ContinuousClock.now < deadline {
                do throws(FlowError) {
                    captured = try await flow.capture(.cardNumber, paymentSID: sid)
                } catch .storeUnavailable {
                    try await Task.sleep(for: .milliseconds(100))
                } catch {
                    throw error
                }
            }
            let after = try #require(captured, "the store works again once the server is back")
            #expect(after.state(.cardNumber) == .requested)
            // The audit records of the outage waited in memory and are written once it is over, in order.
            #expect(await database.audit.flush(within: .seconds(30)))
            let (checked, broken) = try await database.audit.verify()
            #expect(broken == nil && checked >= 3, "\(checked) \(String(describing: broken))")
            var outcomes: [String] = []
            for try await (action, outcome) in try await database.client.query(
                "SELECT action, outcome FROM agent_payments_audit ORDER BY seq"
            ).decode((String, String).self) where action == "payment.capture" {
                outcomes.append(outcome)
            }
            #expect(outcomes.first == "refused: store unavailable" && outcomes.last == "ok", "\(outcomes)")
            #expect(after.version == session.version + 2, "request and answer, nothing lost or doubled")
            #expect(try await database.store.session(sid) == after)
        }
    }
}

/// The spending ledger in PostgreSQL: one daily limit counted by every replica.
@Suite(.postgreSQL) struct PostgresSpendingLedgerTests {
    let api = FakePaymentsAPI()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/cb")
    static let alice = PaymentActor(owner: PaymentOwner(principal: "token:alice"))

    func replica(_ database: PostgresPaymentDatabase, key: Secret, policy: SpendingPolicy) -> PaymentCoordinator {
        PaymentCoordinator(
            api: api, store: database.store, feed: database.feed, callbackURLs: callbacks, callbackKey: key,
            policy: policy, ledger: database.ledger, now: { Sample.date })
    }

    @Test func twoReplicasStartingChargesAtOnceNeverTogetherPassTheDailyLimit() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { databaseA async throws in
                try await withRunningDatabase(url, label: "b") { databaseB async throws in
                    let key = try await databaseA.sharedCallbackKey()
                    let policy = SpendingPolicy(dailyLimit: 100)
                    let a = replica(databaseA, key: key, policy: policy),
                        b = replica(databaseB, key: key, policy: policy)
                    // Ten charges of 30 for one principal, five on each replica, all at once: three fit.
                    let outcomes = await withTaskGroup(of: Result<PaymentSession, FlowError>.self) { group in
                        for n in 0..<10 {
                            let flow = n.isMultiple(of: 2) ? a : b
                            group.addTask {
                                do throws(FlowError) {
                                    return .success(
                                        try await flow.perform(
                                            .start(
                                                callSID: Sample.call(100 + n),
                                                options: PaymentSessionOptions(chargeAmount: "30")),
                                            as: Self.alice
                                        ).session)
                                } catch {
                                    return .failure(error)
                                }
                            }
                        }
                        var all: [Result<PaymentSession, FlowError>] = []
                        for await outcome in group { all.append(outcome) }
                        return all
                    }
                    let started = outcomes.compactMap { try? $0.get() }
                    #expect(started.count == 3, "\(outcomes)")
                    for case .failure(let error) in outcomes {
                        guard case .policy(.dailyLimitReached(amount: "30", _, limit: "100", currency: "USD")) = error
                        else {
                            Issue.record("unexpected refusal: \(error)")
                            continue
                        }
                    }
                    // A cancelled one gives its 30 back, on whichever replica: then one more fits.
                    _ = try await b.perform(
                        .cancel(paymentSID: try #require(started.first?.paymentSID), callSID: nil), as: Self.alice)
                    _ = try await a.perform(
                        .start(callSID: Sample.call(120), options: PaymentSessionOptions(chargeAmount: "30")),
                        as: Self.alice)
                    await #expect(throws: FlowError.self) {
                        try await b.perform(
                            .start(callSID: Sample.call(121), options: PaymentSessionOptions(chargeAmount: "30")),
                            as: Self.alice)
                    }
                    let spent = try await databaseA.ledger.reserve(
                        principal: "token:alice", day: "2027-01-15", currency: "USD", amount: 0, limit: 100)
                    #expect(spent.spentBefore == 90)
                }
            }
        }
    }

    @Test func anAmountDueRegisteredOnOneReplicaFixesTheChargeOnAnother() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { databaseA async throws in
                try await withRunningDatabase(url, label: "b") { databaseB async throws in
                    let key = try await databaseA.sharedCallbackKey()
                    let a = replica(databaseA, key: key, policy: .unlimited),
                        b = replica(databaseB, key: key, policy: .unlimited)
                    try await a.registerAmountDue(
                        AmountDue(
                            amount: "49.90", currency: "EUR", registeredBy: Self.alice.owner,
                            expiresAt: Sample.date.addingTimeInterval(600)), onCall: Sample.call(130))
                    #expect(
                        try await b.amountDue(onCall: Sample.call(130)).flatMap { SpendingPolicy.decimal($0.amount) }
                            == SpendingPolicy.decimal("49.90"))
                    await #expect(throws: FlowError.self) {
                        try await b.perform(
                            .start(
                                callSID: Sample.call(130),
                                options: PaymentSessionOptions(chargeAmount: "5000", currency: "EUR")), as: Self.alice)
                    }
                    let started = try await b.perform(
                        .start(callSID: Sample.call(130), options: PaymentSessionOptions()), as: Self.alice
                    ).session
                    #expect(
                        SpendingPolicy.decimal(started.configuration.options.chargeAmount ?? "")
                            == SpendingPolicy.decimal("49.90"))
                    #expect(started.owner == Self.alice.owner, "the owner is stored with the session")
                    #expect(
                        try await databaseA.store.session(try #require(started.paymentSID))?.owner == Self.alice.owner)
                    try await a.clearAmountDue(onCall: Sample.call(130))
                    #expect(try await b.amountDue(onCall: Sample.call(130)) == nil)
                }
            }
        }
    }
}
