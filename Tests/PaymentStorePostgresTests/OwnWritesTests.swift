import Foundation
@testable import PaymentFlow
import Synchronization
import Testing

@testable import PaymentStorePostgres

/// What a replica's change feed does with its own store's writes (``OwnWrites``): they reach its
/// subscribers without being read back, and an announcement that arrived while the store was
/// writing the same version is read back when that write turns out not to be the one announced.
@Suite(.postgreSQL) struct OwnWritesTests {
    /// Every session `feed` hands over, in order, until released.
    final class Heard: Sendable {
        private final class Log: Sendable {
            let sessions = Mutex<[PaymentSession]>([])
        }
        private let log = Log()
        private let task: Task<Void, Never>

        init(_ feed: PostgresChangeFeed) {
            let changes = feed.subscribe()
            let log = self.log
            task = Task { for await session in changes { log.sessions.withLock { $0.append(session) } } }
        }

        deinit { task.cancel() }

        var all: [PaymentSession] { log.sessions.withLock { $0 } }

        /// Waits until a session `accept` takes was heard, up to 30 s.
        func wait(until accept: ([PaymentSession]) -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while !accept(all), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
        }

        /// Waits until `id` was heard, up to 30 s.
        func wait(for id: String) async throws {
            try await wait { $0.contains { $0.id == id } }
        }
    }

    @Test func aReplicasOwnWritesReachItsSubscribersOnceWithoutBeingReadBack() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                #expect(await a.feed.listening(waitingUpTo: .seconds(10)))
                let heard = Heard(a.feed)
                // 20 sessions written three times each, at once: inserts alone, updates grouped.
                // Nobody publishes them: the store hands them over itself.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<20 {
                        group.addTask { () async throws -> Void in
                            var session = Sample.session(100 + n)
                            let inserted = try await a.store.compareAndSet(session, expectedVersion: nil)
                            #expect(inserted)
                            for _ in 0..<2 {
                                session.version += 1
                                let stored = try await a.store.compareAndSet(
                                    session, expectedVersion: session.version - 1)
                                #expect(stored)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                // A marker another replica writes after them all: its announcement reaches A's
                // listening connection after theirs (one connection hears commits in order).
                let marker = Sample.session(199)
                try await withRunningDatabase(url, label: "other") { other async throws in
                    #expect(try await other.store.compareAndSet(marker, expectedVersion: nil))
                }
                try await heard.wait(for: marker.id)
                let ownVersions = heard.all.filter { $0.id != marker.id }
                #expect(ownVersions.count == 60, "each version once")
                #expect(Set(ownVersions.map { "\($0.id) \($0.version)" }).count == 60)
                #expect(
                    a.feed.rereadStatistics.sessions == 1,
                    "only the other replica's write was read back: \(a.feed.rereadStatistics)")
                #expect(a.store.ownWrites.counts == (0, 0))
            }
        }
    }

    /// Runs `body` on replica A with an announcement held: a session written by replica B before
    /// A listens (a feed's first connection catches nothing up, so A's feed hears of it only
    /// from the announcement given here), announced to A's feed while A's store is itself
    /// writing that version. `body` ends that write.
    func withAnnouncementHeld(
        _ n: Int,
        _ body: (PostgresPaymentDatabase, PaymentSession, OwnWrites.Key, Heard) async throws -> Void
    ) async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            let session = Sample.session(n)
            try await withRunningDatabase(url, label: "b") { b async throws in
                #expect(try await b.store.compareAndSet(session, expectedVersion: nil))
            }
            try await withRunningDatabase(url, label: "a") { a async throws in
                #expect(await a.feed.listening(waitingUpTo: .seconds(10)))
                let heard = Heard(a.feed)
                let key = OwnWrites.Key(id: session.id, version: session.version)
                a.store.ownWrites.began(key)
                a.feed.announce("\(session.id) \(session.version) 1")
                #expect(a.store.ownWrites.counts == (1, 1))
                #expect(a.feed.rereadsAsked == 0, "held while A's write runs, not passed on")
                try await body(a, session, key, heard)
                #expect(a.store.ownWrites.counts == (0, 0))
            }
        }
    }

    @Test func anAnnouncementHeldForAWriteThatLostIsReadBackWhenItEnds() async throws {
        try await withAnnouncementHeld(130) { a, session, key, heard in
            // A's write was refused (B's was first), or had no answer in time.
            a.store.ownWrites.ended(key, stored: nil)
            try await heard.wait(for: session.id)
            #expect(heard.all.map(\.version) == [session.version])
            #expect(a.feed.rereadStatistics.sessions == 1)
        }
    }

    @Test func anAnnouncementHeldForAWriteThatWonIsNotReadBack() async throws {
        try await withAnnouncementHeld(131) { a, session, key, heard in
            // The announcement was of A's own write: the store hands the session over.
            a.store.ownWrites.ended(key, stored: session)
            try await heard.wait(for: session.id)
            // A later announcement of the same version finds it handed over.
            a.feed.announce("\(session.id) \(session.version) 1")
            #expect(heard.all.map(\.version) == [session.version])
            #expect(a.feed.rereadsAsked == 0)
        }
    }

    /// The real race: both replicas write each session's next version at once; whichever wins,
    /// A's subscribers get the winner's session, whether B's announcement reached A's feed while
    /// A's losing write ran (held, then read back) or after (read back at once).
    @Test func whenAnotherReplicaWinsTheSameVersionItsSessionReachesTheLoser() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    #expect(await a.feed.listening(waitingUpTo: .seconds(10)))
                    let heard = Heard(a.feed)
                    let next = Sample.session(140).version + 1
                    var winners: [String: String] = [:]
                    for n in 0..<20 {
                        let session = Sample.session(140 + n)
                        #expect(try await a.store.compareAndSet(session, expectedVersion: nil))
                        var mine = session, theirs = session
                        mine.version += 1
                        theirs.version += 1
                        mine.lastRequestError = "a"
                        theirs.lastRequestError = "b"
                        let (ours, others) = (mine, theirs)
                        async let first = a.store.compareAndSet(ours, expectedVersion: session.version)
                        async let second = b.store.compareAndSet(others, expectedVersion: session.version)
                        let outcomes = try await [first, second]
                        #expect(outcomes.filter { $0 }.count == 1)
                        winners[session.id] = outcomes[0] ? "a" : "b"
                    }
                    let expected = winners
                    func written() -> [String: String] {
                        var got: [String: String] = [:]
                        for session in heard.all where session.version == next {
                            got[session.id] = session.lastRequestError
                        }
                        return got
                    }
                    try await heard.wait { _ in written().count == expected.count }
                    #expect(written() == expected)
                    #expect(expected.values.contains("b"), "B won some: \(expected)")
                    #expect(a.store.ownWrites.counts == (0, 0))
                }
            }
        }
    }
}
