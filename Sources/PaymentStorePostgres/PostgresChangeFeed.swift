import Foundation
import Logging
public import PaymentFlow
import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// Changes from every replica, through PostgreSQL's LISTEN/NOTIFY: the ``PaymentChangeFeed`` of
/// `agent-payments` when `DATABASE_URL` is set.
///
/// Every write of ``PostgresPaymentStore`` notifies ``channel`` with `id version sequence`, in the
/// writing transaction. This feed holds one connection that listens, and re-reads the sessions
/// it is told of (in batches: every announcement that arrived while the last read ran) before
/// handing them to its subscribers. What this process publishes itself reaches its subscribers
/// at once, and the announcement of it is then skipped; what the feed's own store writes is
/// handed over by the store as soon as the write is answered, and its announcement is neither
/// re-read nor lost if that write turns out not to be the one announced (``OwnWrites``). A
/// subscriber is never given a version older than or equal to one it already had.
///
/// When the listening connection is lost (the server restarted, an operator ended the backend),
/// ``run()`` reconnects with backoff, and once listening again re-reads every session changed
/// since a little before the last change it heard of: nothing that changed meanwhile is missed.
public final class PostgresChangeFeed: PaymentChangeFeed, Service, Sendable {
    /// The NOTIFY channel.
    public static let channel = "agent_payments_changes"
    /// How far before the last change heard of a catch-up read starts (changes commit out of
    /// sequence order by at most a statement's duration).
    static let catchUpMargin: Duration = .seconds(5)
    /// The largest number of sessions remembered for de-duplication before finished ones are dropped.
    static let rememberedLimit = 65_536

    private let client: PostgresClient
    private let logger: Logger
    /// The writes of the store this feed was made for: announcements of them are not re-read.
    private let ownWrites: OwnWrites

    private struct State {
        var subscribers: [UUID: AsyncStream<PaymentSession>.Continuation] = [:]
        /// The newest version handed to subscribers, by session id, and whether it had finished.
        var delivered: [String: (version: UInt64, finished: Bool)] = [:]
        /// Announced but not yet re-read: id → announced version.
        var pending: [String: UInt64] = [:]
        /// Wakes the re-reader when `pending` gains an entry.
        var wake: CheckedContinuation<Void, Never>?
        /// The database's clock at the newest change heard of (for catch-up after a reconnect).
        var lastChangeAt: Date?
        var listening = false
        var listeningWaiters: [UUID: CheckedContinuation<Void, Never>] = [:]
        /// Times the listening connection was (re)established, and catch-up reads done.
        var connections = 0
        var catchUps = 0
        /// Re-reads of announced sessions, and the sessions they asked for.
        var rereads = 0
        var rereadSessions = 0
    }

    private let state = Mutex(State())

    public init(store: PostgresPaymentStore) {
        self.client = store.client
        self.logger = store.logger
        self.ownWrites = store.ownWrites
        ownWrites.watch(self)
    }

    // MARK: PaymentChangeFeed

    public func publish(_ session: PaymentSession) {
        deliver([session])
    }

    public func subscribe() -> AsyncStream<PaymentSession> {
        let (stream, continuation) = AsyncStream<PaymentSession>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = UUID()
        state.withLock { $0.subscribers[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Hands over a session its own store has just stored (``OwnWrites``).
    func deliverOwn(_ session: PaymentSession) {
        deliver([session])
    }

    /// Hands each session to every subscriber, unless a version as new was handed over already.
    private func deliver(_ sessions: [PaymentSession]) {
        state.withLock { state in
            for session in sessions {
                if let known = state.delivered[session.id], known.version >= session.version { continue }
                state.delivered[session.id] = (session.version, session.phase.isFinished)
                for continuation in state.subscribers.values { continuation.yield(session) }
            }
            if state.delivered.count > Self.rememberedLimit {
                state.delivered = state.delivered.filter { !$0.value.finished }
            }
        }
    }

    // MARK: Listening

    /// Listens until cancelled or a graceful shutdown, reconnecting whenever the connection is
    /// lost; re-reads what it is told of and hands it to the subscribers.
    public func run() async {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.rereadLoop() }
                await self.listenLoop()
                group.cancelAll()
            }
        }
    }

    /// Resolves once the feed listens (right after start, or after a reconnect), or after `timeout`.
    /// Returns whether it listens.
    @discardableResult
    public func listening(waitingUpTo timeout: Duration) async -> Bool {
        if state.withLock({ $0.listening }) { return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilListening() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return state.withLock { $0.listening }
    }

    /// Returns once the feed listens, or when cancelled.
    private func waitUntilListening() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.listening || Task.isCancelled { return true }
                    state.listeningWaiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.listeningWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// How often the listening connection was established, and catch-up reads done (tests).
    public var statistics: (connections: Int, catchUps: Int) {
        state.withLock { ($0.connections, $0.catchUps) }
    }

    /// Re-reads of announced sessions, and the sessions they asked for (benchmarks).
    public var rereadStatistics: (rereads: Int, sessions: Int) {
        state.withLock { ($0.rereads, $0.rereadSessions) }
    }

    /// Announced sessions queued for a re-read, and re-reads started (tests: together they say
    /// whether an announcement was passed on, whenever the re-read loop takes it).
    var rereadsAsked: Int {
        state.withLock { $0.pending.count + $0.rereads }
    }

    private func listenLoop() async {
        var backoff: Duration = .milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        let (resumeFrom, first) = self.markListening()
                        backoff = .milliseconds(100)
                        // Notifications wait in the connection meanwhile.
                        if first { await self.noteDatabaseClock() }
                        if let resumeFrom { try await self.catchUp(since: resumeFrom) }
                        for try await notification in notifications {
                            self.announce(notification.payload)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning(
                    "change feed lost its PostgreSQL connection; reconnecting",
                    metadata: ["reason": "\(PostgresStoreError.from(error))", "retry.in": "\(backoff)"])
            }
            state.withLock { $0.listening = false }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        state.withLock { $0.listening = false }
    }

    /// Records that the feed listens; returns where a catch-up read starts (nil the first time),
    /// and whether this is the first connection.
    private func markListening() -> (resumeFrom: Date?, first: Bool) {
        let (waiters, resumeFrom, first): ([CheckedContinuation<Void, Never>], Date?, Bool) = state.withLock { state in
            state.listening = true
            state.connections += 1
            let waiters = Array(state.listeningWaiters.values)
            state.listeningWaiters = [:]
            // Without a change heard of yet, start from the first connection's time.
            let resume = state.connections > 1 ? (state.lastChangeAt ?? Date.distantPast) : nil
            return (waiters, resume, state.connections == 1)
        }
        for waiter in waiters { waiter.resume() }
        return (resumeFrom, first)
    }

    /// Sets the catch-up point to the database's clock now, if no change has set it yet.
    private func noteDatabaseClock() async {
        guard let rows = try? await client.query("SELECT clock_timestamp()", logger: logger) else { return }
        guard let now = try? await rows.decode(Date.self).first(where: { _ in true }) else { return }
        state.withLock { state in if state.lastChangeAt == nil { state.lastChangeAt = now } }
    }

    /// Re-reads every session changed since shortly before `date` and delivers the new versions.
    private func catchUp(since date: Date) async throws {
        let from = date.addingTimeInterval(-Double(Self.catchUpMargin.components.seconds))
        var changed: [PaymentSession] = []
        var newest: Date?
        let rows = try await client.query(
            "SELECT session::text, changed_at FROM agent_payments_sessions WHERE changed_at >= \(from) ORDER BY change_seq",
            logger: logger)
        for try await (text, changedAt) in rows.decode((String, Date).self) {
            if let session = try? PaymentSession(storageJSON: text) { changed.append(session) }
            newest = max(newest ?? changedAt, changedAt)
        }
        state.withLock { state in
            state.catchUps += 1
            if let newest { state.lastChangeAt = max(state.lastChangeAt ?? newest, newest) }
        }
        deliver(changed)
        logger.info("change feed caught up after reconnecting", metadata: ["sessions.reread": "\(changed.count)"])
    }

    /// Takes one announcement, `id version sequence`: queued for a re-read unless that version
    /// was delivered already, or held while the store of this feed is writing that version
    /// itself (``OwnWrites``: re-read only if that write turns out not to be the one announced).
    func announce(_ payload: String) {
        let parts = payload.split(separator: " ")
        guard parts.count >= 2, let version = UInt64(parts[1]) else { return }
        let id = String(parts[0])
        if ownWrites.hold(OwnWrites.Key(id: id, version: version), for: self) { return }
        queueReread(id, version: version)
    }

    /// Queues a re-read of `id` for `version`, unless that version was delivered already.
    func queueReread(_ id: String, version: UInt64) {
        let wake: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let known = state.delivered[id], known.version >= version { return nil }
            state.pending[id] = max(state.pending[id] ?? 0, version)
            let wake = state.wake
            state.wake = nil
            return wake
        }
        wake?.resume()
    }

    /// Re-reads announced sessions, all that are pending at once, until cancelled. A batch that
    /// cannot be read now is put back and tried again shortly.
    private func rereadLoop() async {
        while !Task.isCancelled {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let go = state.withLock { state -> Bool in
                        if !state.pending.isEmpty || Task.isCancelled { return true }
                        state.wake = continuation
                        return false
                    }
                    if go { continuation.resume() }
                }
            } onCancel: {
                let wake = state.withLock { state in
                    defer { state.wake = nil }
                    return state.wake
                }
                wake?.resume()
            }
            let batch = state.withLock { state in
                defer { state.pending = [:] }
                if !state.pending.isEmpty {
                    state.rereads += 1
                    state.rereadSessions += state.pending.count
                }
                return state.pending
            }
            guard !batch.isEmpty else { continue }
            do {
                try await reread(Array(batch.keys))
            } catch {
                logger.warning(
                    "change feed could not re-read announced sessions; retrying",
                    metadata: ["reason": "\(PostgresStoreError.from(error))", "sessions": "\(batch.count)"])
                state.withLock { state in state.pending.merge(batch) { max($0, $1) } }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Reads these sessions and delivers them; notes the newest change time seen.
    private func reread(_ ids: [String]) async throws {
        var sessions: [PaymentSession] = []
        var newest: Date?
        for try await (text, changedAt) in try await client.execute(SessionsChanged(ids: ids), logger: logger) {
            if let session = try? PaymentSession(storageJSON: text) { sessions.append(session) }
            newest = max(newest ?? changedAt, changedAt)
        }
        if let newest { state.withLock { $0.lastChangeAt = max($0.lastChangeAt ?? newest, newest) } }
        deliver(sessions)
    }
}
