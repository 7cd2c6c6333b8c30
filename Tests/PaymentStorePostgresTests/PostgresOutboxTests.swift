import Foundation
import PaymentFlow
import PaymentStorePostgres
import PostgresNIO
import Testing
import TwilioPayments

/// The webhook outbox on a real PostgreSQL: messages written with the change or not at all,
/// claims one at a time per payment and in order, never held by two claimers, leases that run
/// out, retries, give-ups, status, replay and purge.
@Suite(.postgreSQL) struct PostgresOutboxTests {
    static func messages(_ session: PaymentSession, _ types: [String], destination: String = "app") -> [OutboxMessage] {
        types.enumerated().map { index, type in
            OutboxMessage(
                destination: destination, id: "evt_\(session.id)_\(session.version)_\(index)", payment: session.id,
                type: type,
                body: Array("{\"type\":\"\(type)\",\"n\":\(index)}".utf8))
        }
    }

    /// Stores session `n` at version 1, then a change to version 2 carrying `types` as messages.
    static func change(
        _ store: PostgresPaymentStore, _ n: Int, _ types: [String], destination: String = "app"
    ) async throws -> PaymentSession {
        let first = Sample.session(n)
        if try await store.session(id: first.id) == nil {
            #expect(try await store.compareAndSet(first, expectedVersion: nil))
        }
        var current = try #require(try await store.session(id: first.id))
        var next = current
        next.version += 1
        #expect(
            try await store.compareAndSet(
                next, expectedVersion: current.version, messages: messages(next, types, destination: destination)))
        current = next
        return current
    }

    static func rows(_ database: PostgresPaymentDatabase) async throws -> [(String, String, String)] {
        var rows: [(String, String, String)] = []
        let query: PostgresQuery = "SELECT event_id, type, state FROM agent_payments_outbox ORDER BY seq"
        for try await row in try await database.client.query(query).decode((String, String, String).self) {
            rows.append(row)
        }
        return rows
    }

    @Test func messagesAreWrittenWithTheirChangeOrNotAtAll() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let store = database.store
                let session = try await Self.change(
                    store, 1, ["payment.started", "payment.item.requested", "payment.item.progress"])
                let written = try await Self.rows(database)
                #expect(
                    written.map(\.1) == ["payment.started", "payment.item.requested", "payment.item.progress"],
                    "in their order")
                #expect(written.allSatisfy { $0.2 == "pending" })
                // A change that loses its compare-and-set writes none of its messages.
                var stale = session
                stale.version += 1
                #expect(
                    try await !store.compareAndSet(
                        stale, expectedVersion: session.version - 1, messages: Self.messages(stale, ["payment.failed"]))
                )
                #expect(try await Self.rows(database).count == 3)
                // Without messages, nothing is written (the plain compare-and-set).
                #expect(try await store.compareAndSet(stale, expectedVersion: session.version))
                #expect(try await Self.rows(database).count == 3)
            }
        }
    }

    @Test func claimsTakeEachPaymentsMessagesOneAtATimeInOrder() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let outbox = database.outbox
                _ = try await Self.change(database.store, 1, ["a1", "a2", "a3"])
                _ = try await Self.change(database.store, 2, ["b1", "b2"])
                _ = try await Self.change(database.store, 3, ["c1"], destination: "other")
                let first = try await outbox.claim(destination: "app", owner: "A", limit: 10, lease: .seconds(60))
                #expect(first.map(\.message.type) == ["a1", "b1"], "the head of each payment, nothing behind it")
                #expect(first.allSatisfy { $0.attempts == 1 && $0.owner == "A" })
                #expect(
                    try await outbox.claim(destination: "app", owner: "B", limit: 10, lease: .seconds(60)).isEmpty,
                    "leased heads hold their payments back from every claimer")
                try await outbox.delivered(first[0])
                let second = try await outbox.claim(destination: "app", owner: "B", limit: 10, lease: .seconds(60))
                #expect(second.map(\.message.type) == ["a2"])
                #expect(second.first?.message.body == Array("{\"type\":\"a2\",\"n\":1}".utf8))
                // A retry is due after its delay, not before; a zero delay is due at once.
                try await outbox.retry(second[0], after: .seconds(3600), reason: "HTTP 500")
                #expect(try await outbox.claim(destination: "app", owner: "B", limit: 10, lease: .seconds(60)).isEmpty)
                // A message given up lets its payment's next one go.
                try await outbox.failed(first[1], reason: "HTTP 400")
                let third = try await outbox.claim(destination: "app", owner: "B", limit: 10, lease: .seconds(60))
                #expect(third.map(\.message.type) == ["b2"])
                // The other destination has its own queue.
                #expect(
                    try await outbox.claim(destination: "other", owner: "A", limit: 10, lease: .seconds(60)).map(
                        \.message.type) == ["c1"])

                let statuses = try await outbox.status()
                let app = try #require(statuses.first { $0.destination == "app" })
                #expect(
                    app.delivered == 1 && app.failed == 1 && app.pending == 3 && app.retrying == 2 && app.inFlight == 1,
                    "\(app)")
                #expect(app.lastError == "HTTP 400")
                #expect(app.oldestPending != nil)
            }
        }
    }

    @Test func aLeaseThatRunsOutLetsAnotherClaimerDeliverAndTheFirstCannotWriteOver() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let outbox = database.outbox
                _ = try await Self.change(database.store, 1, ["a1", "a2"])
                let dead = try await outbox.claim(destination: "app", owner: "dead", limit: 10, lease: .seconds(600))
                #expect(dead.map(\.message.type) == ["a1"])
                // While the lease holds, nobody else gets it (nor what comes after it).
                #expect(
                    try await outbox.claim(destination: "app", owner: "live", limit: 10, lease: .seconds(60)).isEmpty)
                // The lease runs out (moved into the past here: no test waits on a clock).
                try await database.client.query(
                    "UPDATE agent_payments_outbox SET lease_until = clock_timestamp() - interval '1 second' WHERE lease_owner = 'dead'"
                )
                let again = try await outbox.claim(destination: "app", owner: "live", limit: 10, lease: .seconds(60))
                #expect(again.map(\.message.type) == ["a1"])
                let taken = try #require(again.first)
                #expect(taken.attempts == 2)
                // The first claimer's late outcome is not written: the message is the second's now.
                try await outbox.failed(try #require(dead.first), reason: "late")
                #expect(try await Self.rows(database).map(\.2) == ["pending", "pending"])
                try await outbox.delivered(taken)
                #expect(
                    try await outbox.claim(destination: "app", owner: "live", limit: 10, lease: .seconds(60)).map(
                        \.message.type) == ["a2"])
            }
        }
    }

    @Test func claimersRacingNeverHoldTheSameMessage() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                for n in 1...60 { _ = try await Self.change(database.store, n, ["only"]) }
                let outbox = database.outbox
                let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
                    for claimer in 0..<4 {
                        group.addTask {
                            var mine: [Int64] = []
                            while true {
                                let batch = try await outbox.claim(
                                    destination: "app", owner: "claimer-\(claimer)", limit: 3, lease: .seconds(60))
                                if batch.isEmpty { return mine }
                                mine += batch.map(\.sequence)
                            }
                        }
                    }
                    var all: [Int64] = []
                    for try await mine in group { all += mine }
                    return all
                }
                #expect(claimed.count == 60, "every message claimed once: \(claimed.count)")
                #expect(Set(claimed).count == claimed.count, "none claimed twice")
            }
        }
    }

    @Test func failedMessagesCanBeReplayedAndFinishedOnesArePurged() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let outbox = database.outbox
                _ = try await Self.change(database.store, 1, ["a1"])
                _ = try await Self.change(database.store, 2, ["b1"], destination: "other")
                let a = try await outbox.claim(destination: "app", owner: "A", limit: 10, lease: .seconds(60))
                try await outbox.failed(a[0], reason: "HTTP 410")
                let b = try await outbox.claim(destination: "other", owner: "A", limit: 10, lease: .seconds(60))
                try await outbox.failed(b[0], reason: "HTTP 500")
                #expect(
                    try await outbox.replay(destination: "app", failedSince: nil) == 1, "only the destination asked for"
                )
                #expect(try await outbox.replay(destination: nil, failedSince: Date().addingTimeInterval(3600)) == 0)
                let replayed = try await outbox.claim(destination: "app", owner: "B", limit: 10, lease: .seconds(60))
                #expect(replayed.map(\.message.type) == ["a1"])
                #expect(replayed.first?.attempts == 1, "a replay starts counting again")
                try await outbox.delivered(replayed[0])
                #expect(
                    try await outbox.purge(
                        deliveredBefore: Date().addingTimeInterval(-60), failedBefore: Date().addingTimeInterval(-60))
                        == 0)
                #expect(
                    try await outbox.purge(
                        deliveredBefore: Date().addingTimeInterval(60), failedBefore: Date().addingTimeInterval(60))
                        == 2)
                #expect(try await Self.rows(database).isEmpty)
            }
        }
    }
}
