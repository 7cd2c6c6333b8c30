import Foundation
import Logging
import PaymentFlow
import Synchronization
import Testing
@testable import PaymentEvents

/// An outbox in memory with the semantics the PostgreSQL one is tested for: each payment's head
/// claimed alone, leases, owner-checked outcomes. Here it stands in for the database so that the
/// dispatcher's own part (claim, attempt, report, backoff) is tested on its own.
final class MemoryOutbox: PaymentOutbox {
    struct Row {
        var sequence: Int64
        var message: OutboxMessage
        var state = "pending"
        var attempts = 0
        var since = Date()
        var due = Date()
        var owner: String?
        var leaseUntil: Date?
        var lastError: String?
    }
    let rows = Mutex<[Row]>([])

    func append(_ messages: [OutboxMessage]) {
        rows.withLock { rows in
            for message in messages { rows.append(Row(sequence: Int64(rows.count + 1), message: message)) }
        }
    }

    func claim(destination: String, owner: String, limit: Int, lease: Duration) -> [ClaimedOutboxMessage] {
        rows.withLock { rows in
            let now = Date()
            var blocked: Set<String> = []
            var claimed: [ClaimedOutboxMessage] = []
            for index in rows.indices
            where rows[index].message.destination == destination && rows[index].state == "pending" {
                let payment = rows[index].message.payment
                defer { blocked.insert(payment) }
                guard !blocked.contains(payment), claimed.count < limit, rows[index].due <= now,
                    rows[index].leaseUntil.map({ $0 < now }) ?? true
                else { continue }
                rows[index].attempts += 1
                rows[index].owner = owner
                rows[index].leaseUntil = now.addingTimeInterval(
                    Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18)
                let row = rows[index]
                claimed.append(
                    ClaimedOutboxMessage(
                        sequence: row.sequence, message: row.message, attempts: row.attempts, since: row.since,
                        owner: owner, leaseUntil: row.leaseUntil!))
            }
            return claimed
        }
    }

    private func finish(_ claim: ClaimedOutboxMessage, _ change: (inout Row) -> Void) {
        rows.withLock { rows in
            guard let index = rows.firstIndex(where: { $0.sequence == claim.sequence }), rows[index].state == "pending",
                rows[index].owner == claim.owner
            else { return }
            change(&rows[index])
            rows[index].owner = nil
            rows[index].leaseUntil = nil
        }
    }

    func delivered(_ claim: ClaimedOutboxMessage) { finish(claim) { $0.state = "delivered" } }

    func retry(_ claim: ClaimedOutboxMessage, after delay: Duration, reason: String) {
        finish(claim) {
            $0.due = Date().addingTimeInterval(
                Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            $0.lastError = reason
        }
    }

    func failed(_ claim: ClaimedOutboxMessage, reason: String) {
        finish(claim) {
            $0.state = "failed"
            $0.lastError = reason
        }
    }

    func status() -> [OutboxStatus] { [] }
    func replay(destination: String?, failedSince since: Date?) -> Int { 0 }
    func purge(deliveredBefore delivered: Date, failedBefore failed: Date) -> Int { 0 }

    func states() -> [String] { rows.withLock { $0.map(\.state) } }
}

@Suite struct OutboxDispatcherTests {
    static func dispatcher(
        _ destinations: [WebhookDispatcher.Destination], outbox: MemoryOutbox, owner: String,
        retry: WebhookDispatcher.RetryPolicy = WebhookDispatcherTests.fast, lease: Duration = .seconds(60)
    ) -> WebhookDispatcher {
        var logger = Logger(label: "webhooks")
        logger.logLevel = .critical
        return WebhookDispatcher(
            destinations: destinations, retry: retry,
            outbox: .init(outbox: outbox, owner: owner, lease: lease, pollInterval: .milliseconds(50)),
            checkTarget: { .success(WebhookTarget(url: URL(string: $0)!, addresses: [])) }, logger: logger)
    }

    /// Runs `dispatchers` (as their service group would) around `body`.
    static func running(_ dispatchers: [WebhookDispatcher], _ body: () async throws -> Void) async throws {
        let runs = dispatchers.map { dispatcher in Task { try await dispatcher.run() } }
        try await body()
        for run in runs { run.cancel() }
        for run in runs { try await run.value }
    }

    func eventually(_ what: String, within seconds: Int = 30, _ condition: () -> Bool) async throws {
        try await WebhookDispatcherTests().eventually(what, within: seconds, condition)
    }

    @Test func twoReplicasDeliverEachMessageOnceInOrderPerPayment() async throws {
        let receiver = Receiver()
        try await receiver.run {
            let outbox = MemoryOutbox()
            let destination = WebhookDispatcherTests.destination(receiver.url, name: "app")
            let a = Self.dispatcher([destination], outbox: outbox, owner: "A")
            let b = Self.dispatcher([destination], outbox: outbox, owner: "B")
            let payments = (10..<14).map { WebhookDispatcherTests.payment($0) }
            try await Self.running([a, b]) {
                // What the coordinator does: the messages written with the change, then a wake-up.
                for step in 0..<payments[0].count {
                    for payment in payments where step < payment.count {
                        outbox.append(try #require(a.outboxMessages(for: [payment[step]])))
                        await a.publish([payment[step]])
                    }
                }
                let total = payments.map(\.count).reduce(0, +)
                try await eventually("all delivered") { Set(receiver.delivered.map(\.id)).count == total }
                // Sent once each, unless an attempt failed (timed out) and was retried: the two
                // replicas never send the same message on their own. A resend is the delivery
                // guarantee (at least once; receivers deduplicate by webhook-id), not a race.
                let resent = receiver.received.count - Set(receiver.received.map(\.id)).count
                let retried = [a, b].map { $0.counts["app"]?.retried ?? 0 }.reduce(0, +)
                #expect(
                    resent <= retried, "sent twice only after a failed attempt (\(resent) resent, \(retried) retried)")
                for payment in payments {
                    let sid = payment[0].session.paymentSID!.rawValue
                    var seen: Set<String> = []
                    let firsts = receiver.delivered.filter { $0.payment == sid && seen.insert($0.id).inserted }
                    #expect(firsts.map(\.id) == payment.map(\.id), "in order per payment")
                }
                #expect(
                    receiver.delivered.first { $0.id == payments[0][0].id }?.body
                        == WebhookPayload.body(payments[0][0]), "the body as stored")
                try await eventually("written back") { outbox.states().allSatisfy { $0 == "delivered" } }
            }
        }
    }

    @Test func anEndpointThatFailsIsRetriedThroughTheOutboxAndAGoneOneIsGivenUp() async throws {
        let flaky = Receiver { index in index < 3 ? (500, [:]) : (204, [:]) }
        let gone = Receiver { _ in (410, [:]) }
        try await flaky.run {
            try await gone.run {
                let outbox = MemoryOutbox()
                let dispatcher = Self.dispatcher(
                    [
                        WebhookDispatcherTests.destination(flaky.url, name: "flaky"),
                        WebhookDispatcherTests.destination(gone.url, name: "gone"),
                    ], outbox: outbox, owner: "A")
                let events = WebhookDispatcherTests.payment(20)
                #expect(
                    dispatcher.outboxMessages(for: events)?.count == events.count * 2,
                    "one message per event and endpoint")
                try await Self.running([dispatcher]) {
                    outbox.append(dispatcher.outboxMessages(for: events) ?? [])
                    await dispatcher.publish(events)
                    try await eventually("the flaky endpoint has everything") { flaky.delivered.count == events.count }
                    #expect(flaky.delivered.map(\.id) == events.map(\.id))
                    #expect(
                        Set(flaky.received.prefix(4).map(\.id)).count == 1, "the head was retried while the rest waited"
                    )
                    try await eventually("the gone endpoint is disabled") {
                        dispatcher.counts["gone"]?.disabled == true
                    }
                    #expect(gone.received.count == 1)
                    #expect(dispatcher.counts["flaky"]?.retried == 3)
                    try await eventually("outcomes written back") {
                        outbox.rows.withLock {
                            $0.filter { $0.message.destination == "flaky" }.allSatisfy { $0.state == "delivered" }
                        }
                    }
                }
                let states = outbox.rows.withLock { $0.map { ($0.message.destination, $0.state) } }
                #expect(states.filter { $0.0 == "flaky" }.allSatisfy { $0.1 == "delivered" })
                #expect(
                    states.filter { $0.0 == "gone" }.map(\.1).first == "failed",
                    "the 410'd message is given up; the rest wait")
            }
        }
    }

    @Test func aDeliveryWhoseReplicaStoppedIsTakenOverWhenItsLeaseRunsOut() async throws {
        let receiver = Receiver()
        try await receiver.run {
            let outbox = MemoryOutbox()
            let destination = WebhookDispatcherTests.destination(receiver.url, name: "app")
            let events = WebhookDispatcherTests.payment(30)
            outbox.append(
                try #require(Self.dispatcher([destination], outbox: outbox, owner: "x").outboxMessages(for: events)))
            // A replica that claimed the head and died (nothing written back).
            let dead = outbox.claim(destination: "app", owner: "dead", limit: 10, lease: .milliseconds(300))
            #expect(dead.count == 1)
            let survivor = Self.dispatcher([destination], outbox: outbox, owner: "B")
            try await Self.running([survivor]) {
                try await eventually("all delivered by the survivor") { receiver.delivered.count == events.count }
                #expect(receiver.delivered.map(\.id) == events.map(\.id))
            }
        }
    }
}
