import Foundation
import Synchronization
import Testing
import TwilioPayments

@testable import PaymentFlow

/// Callbacks on one session take turns in arrival order (``SessionTurns``); other sessions' go on.
@Suite struct SessionTurnsTests {
    final class Order: Sendable {
        let ran = Mutex<[Int]>([])
    }

    @Test func theTurnPassesInTheOrderAskedAndOtherKeysNeverWait() async throws {
        let turns = SessionTurns()
        let order = Order()
        await turns.begin("a")
        var tasks: [Task<Void, Never>] = []
        for n in 1...3 {
            tasks.append(
                Task {
                    await turns.begin("a")
                    order.ran.withLock { $0.append(n) }
                    turns.end("a")
                })
            // Each one waiting before the next asks: the order asked is known.
            while turns.waiting("a") < n { await Task.yield() }
        }
        await turns.begin("b") // another key: at once, while "a" is held
        turns.end("b")
        #expect(order.ran.withLock { $0 }.isEmpty, "none ran while the first turn was held")
        turns.end("a")
        for task in tasks { await task.value }
        #expect(order.ran.withLock { $0 } == [1, 2, 3])
        #expect(turns.busy == 0)
    }

    /// An in-memory store whose next compare-and-set, once armed, waits until released.
    final class GatedStore: PaymentStore {
        let base = InMemoryPaymentStore()
        private struct Gate {
            var armed = false
            var held: CheckedContinuation<Void, Never>?
        }
        private let gate = Mutex(Gate())
        let writes = Atomic<Int>(0)

        func arm() { gate.withLock { $0.armed = true } }
        var holding: Bool { gate.withLock { $0.held != nil } }
        func release() { gate.withLock { $0.held.take() }?.resume() }

        func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
            await base.session(paymentSID)
        }
        func session(id: String) async throws(PaymentStoreError) -> PaymentSession? { await base.session(id: id) }
        func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
            await base.session(callbackSecretHash: hash)
        }
        func compareAndSet(
            _ session: PaymentSession, expectedVersion: UInt64?
        ) async throws(PaymentStoreError) -> Bool {
            writes.add(1, ordering: .relaxed)
            let wait = gate.withLock { gate in
                defer { gate.armed = false }
                return gate.armed
            }
            if wait {
                await withCheckedContinuation { continuation in gate.withLock { $0.held = continuation } }
            }
            return await base.compareAndSet(session, expectedVersion: expectedVersion)
        }
        func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] { await base.activeSessions() }
        func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
            await base.sessions(onCall: callSID)
        }
        func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
            await base.expireFinished(updatedBefore: date)
        }
    }

    /// A callback that arrives while an earlier one on the same session is still being stored
    /// waits for it: the session ends as the later one left it, not overtaken and then undone by
    /// the earlier one's retry.
    @Test func aLaterCallbackOnTheSameSessionWaitsForTheEarlierOne() async throws {
        let api = FakePaymentsAPI()
        let store = GatedStore()
        let flow = PaymentCoordinator(
            api: api, store: store, callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.com/cb/"))
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        _ = try await flow.capture(.cardNumber, paymentSID: sid)
        let secret = String(api.calls[0].statusCallback.split(separator: "/").last!)
        func typed(_ digits: String) -> PaymentStatusCallback {
            Sample.callback(
                ["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": digits], sid: sid)
        }
        store.arm()
        let writesBefore = store.writes.load(ordering: .relaxed)
        let first = Task { try await flow.receiveCallback(secret: secret, typed("4xxx")) }
        while !store.holding { await Task.yield() }
        let second = Task { try await flow.receiveCallback(secret: secret, typed("41xx")) }
        // The second one either waits for its turn or (without turns) writes past the first.
        let hash = CallbackSecretHash.of(secret)
        let deadline = ContinuousClock.now + .seconds(10)
        while flow.callbackTurns.waiting(hash) == 0, store.writes.load(ordering: .relaxed) == writesBefore + 1,
            ContinuousClock.now < deadline
        {
            await Task.yield()
        }
        store.release()
        #expect(try await first.value)
        #expect(try await second.value)
        let stored = try #require(await store.base.session(sid))
        #expect(stored.state(.cardNumber) == .capturing(masked: "41xx"), "applied in the order they arrived")
        #expect(store.writes.load(ordering: .relaxed) == writesBefore + 2, "one write each, no retry")
    }
}
