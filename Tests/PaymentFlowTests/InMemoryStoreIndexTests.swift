import Foundation
import PaymentFlow
import Testing
import TwilioPayments

/// The in-memory store's own indexes: one unfinished session per call, and the sweeps' query.
@Suite struct InMemoryStoreIndexTests {
    func session(on call: CallSID, at date: Date) -> PaymentSession {
        PaymentSession(
            callSID: call, configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "9.99")),
            at: date)
    }

    @Test func aCallHoldsOneUnfinishedSessionUntilItFinishesOrExpires() async {
        let store = InMemoryPaymentStore()
        let first = session(on: Sample.call, at: Sample.date)
        #expect(await store.compareAndSet(first, expectedVersion: nil))
        let second = session(on: Sample.call, at: Sample.date.addingTimeInterval(1))
        #expect(await !store.compareAndSet(second, expectedVersion: nil), "the call already has an unfinished session")
        #expect(await store.compareAndSet(session(on: Sample.otherCall, at: Sample.date), expectedVersion: nil))
        // Storing the first again, changed but unfinished, keeps the call held.
        var changed = first
        changed.version += 1
        #expect(await store.compareAndSet(changed, expectedVersion: first.version))
        #expect(await !store.compareAndSet(second, expectedVersion: nil))
        var finished = changed
        finished.phase = .cancelled(reason: "test")
        finished.version += 1
        #expect(await store.compareAndSet(finished, expectedVersion: changed.version))
        #expect(await store.compareAndSet(second, expectedVersion: nil), "a finished session frees its call")
        #expect(
            await store.activeSessions().map(\.id).sorted()
                == [second.id, store.sessions(onCall: Sample.otherCall)[0].id].sorted())
        // Expiring the finished session leaves the call held by the second.
        #expect(await store.expireFinished(updatedBefore: .distantFuture) == 1)
        let third = session(on: Sample.call, at: Sample.date.addingTimeInterval(2))
        #expect(await !store.compareAndSet(third, expectedVersion: nil))
    }

    @Test func theSweepsQueryReadsOnlyUnfinishedSessionsChangedBeforeTheDate() async throws {
        let store = InMemoryPaymentStore()
        let old = session(on: Sample.call, at: Sample.date)
        let recent = session(on: Sample.otherCall, at: Sample.date.addingTimeInterval(60))
        #expect(await store.compareAndSet(recent, expectedVersion: nil))
        #expect(await store.compareAndSet(old, expectedVersion: nil))
        #expect(try await store.activeSessions(updatedBefore: Sample.date.addingTimeInterval(30)).map(\.id) == [old.id])
        #expect(try await store.activeSessions(updatedBefore: Sample.date).isEmpty, "strictly before")
        #expect(
            try await store.activeSessions(updatedBefore: .distantFuture).map(\.id) == [old.id, recent.id],
            "oldest first, as activeSessions()")
    }
}
