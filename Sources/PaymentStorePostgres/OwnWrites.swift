import PaymentFlow
import Synchronization

/// The compare-and-sets a ``PostgresPaymentStore`` has sent and not yet had answered, so that
/// the change feeds of the same process neither re-read what their own store wrote nor miss
/// what another replica wrote.
///
/// Why: PostgreSQL tells every listening connection of a committed write, the writer's own
/// included, and the writer's feed hears of it about when the store hears its statement's
/// answer, often first: under load it re-read four in five of its own writes (PostgresBenchmark,
/// "sessions re-read by the change feeds per write"), a query and a decoded snapshot each, for
/// a version its coordinator was about to publish anyway.
///
/// How:
/// - The store marks each write before sending it (``began(_:)``) and when it has its answer
///   (``ended(_:stored:)``). A stored write is handed, as stored (masked), to every feed that
///   watches this store, as a re-read would have handed it.
/// - A feed told of a version that a running write of its store is writing holds that
///   announcement (``hold(_:for:)``) instead of queueing a re-read. When the write ends stored,
///   the announcement was its own and the feed has the session already. When it ends without
///   (another replica wrote that version first) or without an answer (timed out, connection
///   lost: it may have been stored or not), the feed re-reads it as it would have.
///
/// A write is marked before its statement is sent and its notification exists only after that
/// statement commits, so an announcement of it finds it marked until it ends; one that arrives
/// after finds the session delivered already.
final class OwnWrites: Sendable {
    /// A session's id and the version a write gives it (the version its notification announces).
    struct Key: Hashable, Sendable {
        let id: String
        let version: UInt64
    }

    private struct Watcher {
        weak var feed: PostgresChangeFeed?
    }

    private struct State {
        /// Writes sent and not answered, by key (two writes of one version may race; one wins).
        var running: [Key: Int] = [:]
        /// Feeds holding an announcement of a running write, by key.
        var held: [Key: [ObjectIdentifier]] = [:]
        var watchers: [ObjectIdentifier: Watcher] = [:]
    }

    private let state = Mutex(State())

    /// Lets `feed` hold announcements of this store's writes, and hands it what they store.
    func watch(_ feed: PostgresChangeFeed) {
        state.withLock { state in
            state.watchers = state.watchers.filter { $0.value.feed != nil }
            state.watchers[ObjectIdentifier(feed)] = Watcher(feed: feed)
        }
    }

    /// Marks a write as sent (call it before sending).
    func began(_ key: Key) {
        state.withLock { $0.running[key, default: 0] += 1 }
    }

    /// Marks a write as answered: `stored` is the session as stored when it was, `nil` when it
    /// was not or when no answer came.
    func ended(_ key: Key, stored: PaymentSession?) {
        if let stored {
            // Before the mark goes: an announcement from now on finds the version delivered.
            for feed in state.withLock({ $0.watchers.values.compactMap(\.feed) }) { feed.deliverOwn(stored) }
        }
        let requeue = state.withLock { state -> [PostgresChangeFeed] in
            if let count = state.running[key], count > 1 {
                state.running[key] = count - 1
            } else {
                state.running[key] = nil
            }
            if stored != nil {
                state.held[key] = nil
                return []
            }
            guard state.running[key] == nil, let held = state.held.removeValue(forKey: key) else { return [] }
            return held.compactMap { state.watchers[$0]?.feed }
        }
        for feed in requeue { feed.queueReread(key.id, version: key.version) }
    }

    /// Whether `feed` should hold the announcement of `key` until its write ends (it is running
    /// now); if so, it is held.
    func hold(_ key: Key, for feed: PostgresChangeFeed) -> Bool {
        state.withLock { state in
            guard state.running[key] != nil else { return false }
            state.held[key, default: []].append(ObjectIdentifier(feed))
            return true
        }
    }

    /// Writes running and announcements held (tests: both drain to zero).
    var counts: (running: Int, held: Int) {
        state.withLock { ($0.running.count, $0.held.count) }
    }
}
