import NIOCore
import NIOPosix
import Synchronization

/// NIO's singleton loops, the ones `EventLoopExecutor` makes the global executor: only to these
/// is an answer sent back (they never shut down, so nothing sent there is dropped).
private let executorLoops = Set(MultiThreadedEventLoopGroup.singleton.makeIterator().map { ObjectIdentifier($0) })

/// The loop the caller runs on, if it is one of NIO's singleton loops.
func executorLoop() -> (any EventLoop)? {
    guard let loop = MultiThreadedEventLoopGroup.currentEventLoop, executorLoops.contains(ObjectIdentifier(loop))
    else { return nil }
    return loop
}

/// Group commit for the compare-and-set of stored sessions: the writes that arrive while earlier
/// ones are on their way to the database go together in the next statement.
///
/// Why: PostgreSQL serialises the commits of every transaction that notifies, WAL flush
/// included (`PreCommit_Notify` takes one lock until the commit is done), so one write per
/// statement caps a database at one commit per flush whatever the client does. Several
/// compare-and-sets in one statement share that commit, and the round trips, the notifications'
/// delivery and the feed's re-read with it (Docs/benchmarks.md, "Group commit").
///
/// How: a write waits only while `maxRunning` statements are already running, never on a
/// timer, so a lone write goes at once, as before. When a statement ends, everything pending
/// (up to `maxBatch`) goes in the next. A session is never in two statements at once, nor twice
/// in one, so each compare-and-set is decided against the version the previous one left, as if
/// sent alone: a second write of the same session waits for the statement that holds the first.
/// A caller cancelled while its write still waits takes it back; one cancelled later is answered
/// by the statement.
///
/// A caller waits at most as long as its `deadline` allows: when it expires, the caller gets the
/// deadline's error at once and its write, if still waiting, is taken back (one already in a
/// statement may still be stored, as with any request given up on). The callers are answered
/// from the statement's task directly, so a write costs no task of its own, each on the event
/// loop it asked from when it asked from one: with NIO's loops as the executor, a resumed task
/// goes on where it is resumed, and every caller of a statement would otherwise go on, response
/// and all, on the one loop that read the statement's reply.
final class GroupCommit<Write: Sendable>: Sendable {
    /// Which writes of a statement were stored, by key, and which failed on their own (when the
    /// statement was refused and its writes were tried one by one).
    struct Outcome: Sendable {
        var stored: Set<String> = []
        var failed: [String: any Error] = [:]
    }

    /// Runs writes in one statement and answers for each. A thrown error fails every write of
    /// the statement.
    typealias Execute = @Sendable ([Write]) async throws -> Outcome

    /// Starts a caller's deadline: calls `expire` with the error to answer once it passes, and
    /// returns what stops it.
    typealias Deadline = @Sendable (_ expire: @escaping @Sendable (any Error) -> Void) -> (@Sendable () -> Void)

    private struct Waiting {
        let token: UInt64
        let write: Write
        let key: String
    }

    /// A caller not answered yet: its write pending or in a running statement.
    private struct Caller {
        let continuation: CheckedContinuation<Bool, any Error>
        /// The event loop it asked from, when NIO's loops are the executor: it is answered there.
        let home: (any EventLoop)?
        var stopDeadline: (@Sendable () -> Void)?

        /// Resumes the caller on its own loop: under NIO's executor a task goes on where it is
        /// resumed, and a statement's callers would all go on on the loop that read its reply,
        /// their responses and whatever follows with them.
        func answer(_ result: Result<Bool, any Error>) {
            guard let home, !home.inEventLoop else {
                continuation.resume(with: result)
                return
            }
            home.execute { continuation.resume(with: result) }
        }
    }

    private struct State {
        var pending: [Waiting] = []
        var callers: [UInt64: Caller] = [:]
        /// Keys of the writes in running statements.
        var running: Set<String> = []
        var statementsRunning = 0
        var nextToken: UInt64 = 0
        var statements = 0
        var writes = 0
        var largest = 0
    }

    private let state = Mutex(State())
    private let maxRunning: Int
    private let maxBatch: Int
    private let key: @Sendable (Write) -> String
    private let deadline: Deadline?
    private let home: @Sendable () -> (any EventLoop)?
    private let execute: Execute

    /// Groups writes (each identified by `key`) into statements run by `execute`: at most
    /// `maxRunning` at a time, each of at most `maxBatch` writes; each caller waits until its
    /// `deadline` at most (without one, until its statement ends), and is answered on its `home`
    /// event loop (by default the loop it asks from when that is one of NIO's singleton loops,
    /// the ones that become the executor and never shut down).
    init(
        maxRunning: Int, maxBatch: Int, key: @escaping @Sendable (Write) -> String, deadline: Deadline? = nil,
        home: @escaping @Sendable () -> (any EventLoop)? = { executorLoop() },
        execute: @escaping Execute
    ) {
        precondition(maxRunning > 0 && maxBatch > 0)
        self.maxRunning = maxRunning
        self.maxBatch = maxBatch
        self.key = key
        self.deadline = deadline
        self.home = home
        self.execute = execute
    }

    /// Statements run, writes they carried, and the most in one.
    var statistics: (statements: Int, writes: Int, largest: Int) {
        state.withLock { ($0.statements, $0.writes, $0.largest) }
    }

    /// Writes waiting for a statement (tests).
    var waiting: Int { state.withLock { $0.pending.count } }

    /// Whether `write` was stored: it goes in the next statement that can take it.
    func submit(_ write: Write) async throws -> Bool {
        let key = key(write)
        let token = state.withLock { state in
            state.nextToken &+= 1
            return state.nextToken
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                // The cancellation flag is read under the lock the handler takes: either the
                // handler finds this write pending, or this sees the flag.
                let (cancelled, batch) = state.withLock { state -> (Bool, [Waiting]?) in
                    if Task.isCancelled { return (true, nil) }
                    state.pending.append(Waiting(token: token, write: write, key: key))
                    state.callers[token] = Caller(continuation: continuation, home: home())
                    return (false, Self.nextBatch(&state, maxRunning: maxRunning, maxBatch: maxBatch))
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if let deadline {
                    let stop = deadline { [weak self] error in self?.expire(token, with: error) }
                    // Answered meanwhile (or expired already): the deadline has nothing left to stop.
                    let answered = state.withLock { state in
                        state.callers[token]?.stopDeadline = stop
                        return state.callers[token] == nil
                    }
                    if answered { stop() }
                }
                if let batch { Task { await self.drive(batch) } }
            }
        } onCancel: {
            let taken = state.withLock { state -> Caller? in
                guard let index = state.pending.firstIndex(where: { $0.token == token }) else { return nil }
                state.pending.remove(at: index)
                return state.callers.removeValue(forKey: token)
            }
            taken?.stopDeadline?()
            taken?.answer(.failure(CancellationError()))
        }
    }

    /// Answers the caller of `token` with `error` now, taking its write back if it still waits.
    private func expire(_ token: UInt64, with error: any Error) {
        let caller = state.withLock { state -> Caller? in
            if let index = state.pending.firstIndex(where: { $0.token == token }) { state.pending.remove(at: index) }
            return state.callers.removeValue(forKey: token)
        }
        caller?.answer(.failure(error))
    }

    /// Runs `batch`, then every batch that is pending when it ends, until none is.
    private func drive(_ batch: [Waiting]) async {
        var batch = batch
        while true {
            let outcome: Result<Outcome, any Error>
            do {
                outcome = .success(try await execute(batch.map(\.write)))
            } catch {
                outcome = .failure(error)
            }
            // Callers whose deadline passed were answered already.
            let done = batch
            let callers = state.withLock { state in done.map { state.callers.removeValue(forKey: $0.token) } }
            for (waiting, caller) in zip(batch, callers) {
                guard let caller else { continue }
                caller.stopDeadline?()
                switch outcome {
                case .success(let answer):
                    if let error = answer.failed[waiting.key] {
                        caller.answer(.failure(error))
                    } else {
                        caller.answer(.success(answer.stored.contains(waiting.key)))
                    }
                case .failure(let error):
                    caller.answer(.failure(error))
                }
            }
            guard
                let next = state.withLock({ state -> [Waiting]? in
                    state.statementsRunning -= 1
                    for waiting in done { state.running.remove(waiting.key) }
                    return Self.nextBatch(&state, maxRunning: maxRunning, maxBatch: maxBatch)
                })
            else { return }
            batch = next
        }
    }

    /// Takes the next statement's writes out of `pending`, if one may run now: in arrival
    /// order, skipping a key already running or already taken (it waits for a later statement).
    private static func nextBatch(_ state: inout State, maxRunning: Int, maxBatch: Int) -> [Waiting]? {
        guard state.statementsRunning < maxRunning, !state.pending.isEmpty else { return nil }
        var batch: [Waiting] = []
        var left: [Waiting] = []
        for waiting in state.pending {
            if batch.count < maxBatch, !state.running.contains(waiting.key) {
                state.running.insert(waiting.key)
                batch.append(waiting)
            } else {
                left.append(waiting)
            }
        }
        guard !batch.isEmpty else { return nil }
        state.pending = left
        state.statementsRunning += 1
        state.statements += 1
        state.writes += batch.count
        state.largest = max(state.largest, batch.count)
        return batch
    }
}
