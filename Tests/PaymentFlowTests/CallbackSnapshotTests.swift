import Foundation
import Synchronization
import Testing
import TwilioPayments

@testable import PaymentFlow

/// A callback starts from the coordinator's published snapshot of its session when it has one
/// (no read by the URL's secret), and the compare-and-set still decides: a stale snapshot costs a
/// re-read, never a lost or reordered change.
@Suite struct CallbackSnapshotTests {
    /// An in-memory store that counts the reads by a callback URL's secret.
    final class CountingStore: PaymentStore {
        let base = InMemoryPaymentStore()
        let readsBySecret = Atomic<Int>(0)

        func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
            await base.session(paymentSID)
        }
        func session(id: String) async throws(PaymentStoreError) -> PaymentSession? { await base.session(id: id) }
        func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
            readsBySecret.add(1, ordering: .relaxed)
            return await base.session(callbackSecretHash: hash)
        }
        func compareAndSet(
            _ session: PaymentSession, expectedVersion: UInt64?
        ) async throws(PaymentStoreError) -> Bool {
            await base.compareAndSet(session, expectedVersion: expectedVersion)
        }
        func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] { await base.activeSessions() }
        func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
            await base.sessions(onCall: callSID)
        }
        func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
            await base.expireFinished(updatedBefore: date)
        }
        var reads: Int { readsBySecret.load(ordering: .relaxed) }
    }

    let api = FakePaymentsAPI()
    let store = CountingStore()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/twilio/callbacks/")

    /// A replica with a change feed of its own: it never hears what another replica changes, so
    /// its snapshot goes stale as soon as the other one writes.
    func replica() -> PaymentCoordinator {
        PaymentCoordinator(
            api: api, store: store, feed: InMemoryChangeFeed(), callbackURLs: callbacks, now: { Sample.date })
    }

    static func typed(_ digits: String, sid: PaymentSID) -> PaymentStatusCallback {
        Sample.callback(
            [
                "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": digits,
                "Required": "payment-card-number",
            ], sid: sid)
    }

    /// Follows `coordinator`'s feed until its snapshot holds `sid` (bounded).
    func following(_ coordinator: PaymentCoordinator, _ sid: PaymentSID) async throws -> Task<Void, Never> {
        let follower = Task { await coordinator.followChanges() }
        let deadline = ContinuousClock.now + .seconds(30)
        while coordinator.publishedSession(sid) == nil, ContinuousClock.now < deadline {
            _ = try await coordinator.session(sid) // a read offers the session to the snapshot
            try await Task.sleep(for: .milliseconds(1))
        }
        return follower
    }

    @Test func aCallbackWhoseSessionIsInTheSnapshotReadsNothingByItsSecret() async throws {
        let a = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = String(try #require(api.calls.first?.statusCallback).split(separator: "/").last!)
        _ = try await a.capture(.cardNumber, paymentSID: sid)
        let follower = try await following(a, sid)
        defer { follower.cancel() }

        #expect(try await a.receiveCallback(secret: secret, Self.typed("xxxx", sid: sid)))
        #expect(store.reads == 0, "the snapshot held the session")
        #expect(await store.base.session(sid)?.state(.cardNumber) == .capturing(masked: "xxxx"))
    }

    @Test func aStaleSnapshotCostsARereadAndLosesNothing() async throws {
        let a = replica(), b = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = String(try #require(api.calls.first?.statusCallback).split(separator: "/").last!)
        _ = try await a.capture(.cardNumber, paymentSID: sid)
        let follower = try await following(a, sid)
        defer { follower.cancel() }
        let known = try #require(a.publishedSession(sid))

        // B applies a callback that A never hears of: A's snapshot is a version behind.
        #expect(try await b.receiveCallback(secret: secret, Self.typed("xxxx", sid: sid)))
        let afterB = try #require(await store.base.session(sid))
        #expect(afterB.version == known.version + 1)
        #expect(a.publishedSession(sid)?.version == known.version, "A's snapshot is stale")

        // A's callback starts from the stale snapshot, loses the compare-and-set, reads the
        // session again by id and applies the change on top of B's.
        #expect(try await a.receiveCallback(secret: secret, Self.typed("xxxxxxxx", sid: sid)))
        let stored = try #require(await store.base.session(sid))
        #expect(stored.version == afterB.version + 1, "applied once, after B's change")
        #expect(stored.state(.cardNumber) == .capturing(masked: "xxxxxxxx"))
        #expect(a.publishedSession(sid) == stored, "A's snapshot caught up with its own write")
    }

    /// The race `Benchmarks/run` found (a payment that never finished): the snapshot hears of a
    /// capture request after the store has it, the caller's first keypress arrives in between,
    /// and against the older version the callback changes nothing (no capture was requested
    /// yet). It must be tried on the stored session, not acknowledged and dropped.
    @Test func aCallbackThatChangesNothingInAStaleSnapshotIsTriedOnTheStoredSession() async throws {
        let a = replica(), b = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = String(try #require(api.calls.first?.statusCallback).split(separator: "/").last!)
        let follower = try await following(a, sid)
        defer { follower.cancel() }
        // The keypress arrives once before any capture was requested (Twilio sends it again
        // below, as it does when an answer is late): A applies what it can (Twilio's
        // `Required`), not the digits.
        let keypress = Self.typed("xxxx", sid: sid)
        #expect(try await a.receiveCallback(secret: secret, keypress))
        #expect(a.publishedSession(sid)?.required == [.cardNumber])
        #expect(a.publishedSession(sid)?.state(.cardNumber) == .notRequested)

        // B requests the capture; A's snapshot does not hear of it.
        _ = try await b.capture(.cardNumber, paymentSID: sid)
        #expect(await store.base.session(sid)?.state(.cardNumber) == .requested)
        #expect(a.publishedSession(sid)?.state(.cardNumber) == .notRequested, "A's snapshot is stale")

        // The same callback again, now that the capture is requested: nothing to A's snapshot,
        // news to the stored session.
        let stale = try #require(a.publishedSession(sid))
        #expect(!PaymentReducer.reduce(stale, .callbackReceived(keypress, at: Sample.date)).changed)
        #expect(try await a.receiveCallback(secret: secret, keypress))
        #expect(
            await store.base.session(sid)?.state(.cardNumber) == .capturing(masked: "xxxx"),
            "the keypress is applied to the stored session")
        #expect(store.reads == 0, "read again by id, not by the secret")
    }

    @Test func aSecretThatIsNotTheSnapshotSessionsIsLookedUpAndRefused() async throws {
        let a = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let follower = try await following(a, sid)
        defer { follower.cancel() }
        let before = try #require(await store.base.session(sid))

        // The callback names the payment the snapshot holds, on a URL that is not that session's.
        #expect(try await a.receiveCallback(secret: "not-the-secret", Self.typed("xxxx", sid: sid)) == false)
        #expect(store.reads == 1, "looked up by the URL's secret, which names no session")
        #expect(await store.base.session(sid) == before, "nothing changed")
    }
}
