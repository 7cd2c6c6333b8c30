import Foundation
import Logging
import NIOCore
import NIOPosix
@testable import PaymentFlow
import Synchronization
import Testing

@testable import PaymentStorePostgres

/// Statements held until the test lets them go, and what ran: each statement's keys, and
/// whether any key was ever in two running statements (or twice in one).
final class HeldStatements: Sendable {
    private struct State {
        var batches: [[String]] = []
        var running: Set<String> = []
        var overlapped = false
        var gates: [CheckedContinuation<Void, Never>] = []
        var released = 0
    }
    private let state = Mutex(State())
    /// Keys refused by every statement (stored: false); `fail` fails a statement holding it;
    /// `failAlone` fails that write alone (as a statement tried write by write reports it).
    let refused: Set<String>
    let fail: String?
    let failAlone: String?

    init(refused: Set<String> = [], fail: String? = nil, failAlone: String? = nil) {
        self.refused = refused
        self.fail = fail
        self.failAlone = failAlone
    }

    var batches: [[String]] { state.withLock { $0.batches } }
    var overlapped: Bool { state.withLock { $0.overlapped } }
    var waiting: Int { state.withLock { $0.gates.count } }

    struct Failed: Error {}

    func execute(_ keys: [String]) async throws -> GroupCommit<String>.Outcome {
        state.withLock { state in
            state.batches.append(keys)
            for key in keys where !state.running.insert(key).inserted { state.overlapped = true }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let go = state.withLock { state -> Bool in
                if state.released > 0 {
                    state.released -= 1
                    return true
                }
                state.gates.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
        state.withLock { state in for key in keys { state.running.remove(key) } }
        if let fail, keys.contains(fail) { throw Failed() }
        var outcome = GroupCommit<String>.Outcome(stored: Set(keys).subtracting(refused))
        if let failAlone, keys.contains(failAlone) {
            outcome.stored.remove(failAlone)
            outcome.failed[failAlone] = Failed()
        }
        return outcome
    }

    /// Lets `count` statements (held now or to come) finish.
    func release(_ count: Int) {
        let gates = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let now = Array(state.gates.prefix(count))
            state.gates.removeFirst(now.count)
            state.released += count - now.count
            return now
        }
        for gate in gates { gate.resume() }
    }

    /// Waits until `count` statements are held.
    func held(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while waiting < count {
            guard ContinuousClock.now < deadline else { throw Failed() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// An event loop that counts the work it is handed (and hands it to a real one).
final class CountingLoop: EventLoop, Sendable {
    private let loop: any EventLoop
    private let count = Atomic(0)
    init(_ loop: any EventLoop) { self.loop = loop }

    var executed: Int { count.load(ordering: .sequentiallyConsistent) }
    var inEventLoop: Bool { loop.inEventLoop }

    func execute(_ task: @escaping @Sendable () -> Void) {
        count.add(1, ordering: .sequentiallyConsistent)
        loop.execute(task)
    }

    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        loop.scheduleTask(deadline: deadline, task)
    }

    func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        loop.scheduleTask(in: delay, task)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        loop.shutdownGracefully(queue: queue, callback)
    }
}

/// Callers' deadlines the test expires by hand, in the order they were started.
final class ManualDeadlines: Sendable {
    struct Expired: Error {}
    private struct State {
        var expires: [@Sendable (any Error) -> Void] = []
        var stopped: [Int] = []
    }
    private let state = Mutex(State())

    var deadline: GroupCommit<String>.Deadline {
        { expire in
            let index = self.state.withLock { state in
                state.expires.append(expire)
                return state.expires.count - 1
            }
            return { self.state.withLock { $0.stopped.append(index) } }
        }
    }

    /// Deadlines started so far, and which were stopped (by index, in the order stopped).
    var started: Int { state.withLock { $0.expires.count } }
    var stopped: [Int] { state.withLock { $0.stopped } }

    /// The deadline started `index`-th passes.
    func expire(_ index: Int) {
        let expire = state.withLock { $0.expires[index] }
        expire(Expired())
    }

    /// Waits until `count` deadlines were started.
    func started(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while started < count {
            guard ContinuousClock.now < deadline else { throw HeldStatements.Failed() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct GroupCommitTests {
    /// Waits until `count` writes wait for a statement.
    static func waiting(_ count: Int, in group: GroupCommit<String>) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while group.waiting < count {
            guard ContinuousClock.now < deadline else { throw HeldStatements.Failed() }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    static func group(_ statements: HeldStatements, running: Int = 2, largest: Int = 64) -> GroupCommit<String> {
        GroupCommit(maxRunning: running, maxBatch: largest, key: { $0 }) { try await statements.execute($0) }
    }

    @Test func aLoneWriteGoesAtOnceInAStatementOfItsOwn() async throws {
        let statements = HeldStatements(refused: ["b"])
        statements.release(2)
        let group = Self.group(statements)
        #expect(try await group.submit("a"))
        #expect(try await !group.submit("b"), "the statement did not store it")
        #expect(statements.batches == [["a"], ["b"]])
        #expect(group.statistics == (2, 2, 1))
    }

    @Test func writesArrivingWhileStatementsRunGoTogetherAndNoSessionIsInTwoAtOnce() async throws {
        let statements = HeldStatements(refused: ["k3"])
        let group = Self.group(statements, running: 2, largest: 4)
        // Two statements run and are held; what comes meanwhile waits.
        let first = Task { try await group.submit("k1") }
        let second = Task { try await group.submit("k2") }
        try await statements.held(2)
        // k1 again, k3 twice, k4…k7: k1 waits for the statement holding it, the second k3 for
        // the first, and a statement takes at most four.
        let later = ["k1", "k3", "k3", "k4", "k5", "k6", "k7"].map { key in Task { try await group.submit(key) } }
        try await Self.waiting(7, in: group)
        // A statement is counted when its writes are taken, under the lock that queues a write.
        #expect(group.statistics.statements == 2, "nothing more starts while two statements run")
        statements.release(100)
        #expect(try await first.value)
        #expect(try await second.value)
        var outcomes: [Bool] = []
        for task in later { outcomes.append(try await task.value) }
        #expect(outcomes == [true, false, false, true, true, true, true])
        #expect(!statements.overlapped, "a session was in two statements at once, or twice in one")
        let batches = statements.batches
        #expect(batches.count >= 4, "\(batches)")
        #expect(batches.allSatisfy { $0.count <= 4 && Set($0).count == $0.count }, "\(batches)")
        #expect(batches.flatMap { $0 }.sorted() == ["k1", "k1", "k2", "k3", "k3", "k4", "k5", "k6", "k7"])
        let (count, writes, largest) = group.statistics
        #expect(count == batches.count && writes == 9 && largest == 4)
    }

    @Test func aWriteCancelledWhileItWaitsIsTakenBackAndNeverSent() async throws {
        let statements = HeldStatements()
        let group = Self.group(statements, running: 1)
        let running = Task { try await group.submit("a") }
        try await statements.held(1)
        let waiting = Task { try await group.submit("b") }
        try await Self.waiting(1, in: group)
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        statements.release(100)
        #expect(try await running.value)
        #expect(try await group.submit("c"))
        #expect(statements.batches == [["a"], ["c"]])
    }

    @Test func aWriteThatFailedOnItsOwnFailsOnlyItsCaller() async throws {
        let statements = HeldStatements(failAlone: "bad")
        let group = Self.group(statements, running: 1)
        let running = Task { try await group.submit("a") }
        try await statements.held(1)
        let bad = Task { try await group.submit("bad") }
        let good = Task { try await group.submit("b") }
        try await Self.waiting(2, in: group)
        statements.release(100)
        #expect(try await running.value)
        await #expect(throws: HeldStatements.Failed.self) { try await bad.value }
        #expect(try await good.value, "stored beside a write that failed")
        #expect(statements.batches.map { Set($0) } == [["a"], ["bad", "b"]])
    }

    @Test func aCallerWhoseDeadlinePassesIsAnsweredAtOnceAndItsWaitingWriteIsTakenBack() async throws {
        let statements = HeldStatements()
        let deadlines = ManualDeadlines()
        let group = GroupCommit<String>(maxRunning: 1, maxBatch: 64, key: { $0 }, deadline: deadlines.deadline) {
            try await statements.execute($0)
        }
        // "a" in a statement held by the database; "b" waits for the next one.
        let running = Task { try await group.submit("a") }
        try await statements.held(1)
        try await deadlines.started(1)
        let waiting = Task { try await group.submit("b") }
        try await Self.waiting(1, in: group)
        try await deadlines.started(2)
        // b's deadline passes: answered now, and never sent.
        deadlines.expire(1)
        await #expect(throws: ManualDeadlines.Expired.self) { try await waiting.value }
        #expect(group.waiting == 0)
        // a's deadline passes while its statement runs: answered now, before the statement ends.
        deadlines.expire(0)
        await #expect(throws: ManualDeadlines.Expired.self) { try await running.value }
        statements.release(100)
        // The statement's end answers nobody twice, and the group goes on: the next write is
        // answered by its statement, which stops its deadline.
        #expect(try await group.submit("c"))
        #expect(statements.batches == [["a"], ["c"]])
        #expect(deadlines.started == 3)
        #expect(deadlines.stopped == [2], "only the deadline of the caller its statement answered was stopped")
    }

    /// A caller is answered on the event loop it asked from: the statement's task hands the answer
    /// to that loop rather than resuming the caller itself.
    @Test func aCallerIsAnsweredOnTheEventLoopItAskedFrom() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let home = CountingLoop(loops.next())
        let statements = HeldStatements()
        statements.release(1)
        let group = GroupCommit<String>(maxRunning: 1, maxBatch: 64, key: { $0 }, home: { home }) {
            try await statements.execute($0)
        }
        #expect(try await group.submit("a"))
        #expect(home.executed == 1, "answered without going through its loop")
        try await loops.shutdownGracefully()
    }

    /// By default the home is the loop asked from only when it is one of NIO's singleton loops
    /// (those that become the executor and never shut down): never a loop of a group someone may
    /// shut down while a statement runs, whose answer would then be dropped.
    @Test func theDefaultHomeIsOnlyEverASingletonLoop() async throws {
        let singleton = MultiThreadedEventLoopGroup.singleton.next()
        let onSingleton = try await singleton.submit { executorLoop().map { ObjectIdentifier($0) } }.get()
        #expect(onSingleton == ObjectIdentifier(singleton))
        let own = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let onOwn = try await own.next().submit { executorLoop() == nil }.get()
        #expect(onOwn, "a loop of another group taken for home")
        #expect(executorLoop() == nil, "off the loops, a home")
        try await own.shutdownGracefully()
    }

    @Test func aFailedStatementFailsEachOfItsWritesAndTheNextOneRuns() async throws {
        let statements = HeldStatements(fail: "bad")
        let group = Self.group(statements, running: 1)
        let running = Task { try await group.submit("a") }
        try await statements.held(1)
        let together = ["bad", "b"].map { key in Task { try await group.submit(key) } }
        try await Self.waiting(2, in: group)
        statements.release(100)
        #expect(try await running.value)
        for task in together {
            await #expect(throws: HeldStatements.Failed.self) { try await task.value }
        }
        #expect(try await group.submit("b"), "the group goes on")
        #expect(statements.batches.map { Set($0) } == [["a"], ["bad", "b"], ["b"]])
    }
}

/// The grouped statement itself, on PostgreSQL: each row decided on its own version, and a
/// statement the database refuses tried again write by write.
@Suite(.postgreSQL) struct GroupedStatementTests {
    @Test func eachWriteOfAGroupedStatementIsDecidedAsIfAlone() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let sessions = (200..<204).map { Sample.session($0) }
                for session in sessions {
                    #expect(try await database.store.compareAndSet(session, expectedVersion: nil))
                }
                func next(_ index: Int, _ change: (inout PaymentSession) -> Void = { _ in }) -> PaymentSession {
                    var session = sessions[index]
                    session.version += 1
                    session.lastRequestError = "grouped"
                    change(&session)
                    return session
                }
                let fresh = PostgresPaymentStore.update(next(0), expectedVersion: sessions[0].version)
                let stale = PostgresPaymentStore.update(next(1), expectedVersion: sessions[1].version - 1)
                let taken = PostgresPaymentStore.update(
                    next(2) { $0.paymentSID = sessions[3].paymentSID }, expectedVersion: sessions[2].version)
                let other = PostgresPaymentStore.update(next(3), expectedVersion: sessions[3].version)
                let client = database.client
                let logger = Logger(label: "test")
                // Together: the fresh ones stored, the stale one not.
                #expect(
                    try await PostgresPaymentStore.storeTogether([stale, fresh], client: client, logger: logger)
                        .stored == [fresh.id])
                // One refused by the unique index: the statement fails, and alone the other is stored.
                let refused = try await PostgresPaymentStore.storeTogether(
                    [taken, other], client: client, logger: logger)
                #expect(refused.stored == [other.id])
                #expect(refused.failed.isEmpty, "a payment SID taken is a lost compare-and-set, not a failure")
                #expect(try await database.store.session(id: sessions[0].id) == next(0))
                #expect(try await database.store.session(id: sessions[1].id) == sessions[1])
                #expect(try await database.store.session(id: sessions[2].id) == sessions[2])
                #expect(try await database.store.session(id: sessions[3].id) == next(3))
            }
        }
    }
}
