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
        let store: any PaymentStore = InMemoryPaymentStore()
        let old = session(on: Sample.call, at: Sample.date)
        let recent = session(on: Sample.otherCall, at: Sample.date.addingTimeInterval(60))
        #expect(try await store.compareAndSet(recent, expectedVersion: nil))
        #expect(try await store.compareAndSet(old, expectedVersion: nil))
        #expect(try await store.activeSessions(updatedBefore: Sample.date.addingTimeInterval(30)).map(\.id) == [old.id])
        #expect(try await store.activeSessions(updatedBefore: Sample.date).isEmpty, "strictly before")
        #expect(
            try await store.activeSessions(updatedBefore: .distantFuture).map(\.id) == [old.id, recent.id],
            "oldest first, as activeSessions()")
    }
}

/// The sweeps' narrow reads: the stranded-start sweep's (sessions still starting) and the
/// silent-call sweep's (what it needs of each idle session), against what the protocol's
/// defaults derive from every active session.
@Suite struct SweepReadTests {
    static let thirdCall = CallSID(validated: "CA" + String(repeating: "3", count: 32))
    static let fourthCall = CallSID(validated: "CA" + String(repeating: "4", count: 32))

    /// Four sessions: starting (changed at `date`), active (created 10 s before, so changed
    /// first), active and changed a minute later, finished before any of them.
    static func stored(in store: some PaymentStore) async throws -> (starting: PaymentSession, active: PaymentSession) {
        func fresh(_ call: CallSID, at date: Date) -> PaymentSession {
            PaymentSession(
                callSID: call,
                configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "1.00")),
                at: date)
        }
        func created(_ call: CallSID, _ payment: Character, at date: Date) -> PaymentSession {
            let sid = PaymentSID(validated: "PK" + String(repeating: payment, count: 32))
            return PaymentReducer.reduce(fresh(call, at: date), .sessionCreated(sid, at: date)).session
        }
        let starting = fresh(Sample.call, at: Sample.date)
        let active = created(Sample.otherCall, "b", at: Sample.date.addingTimeInterval(-10))
        let recent = created(thirdCall, "c", at: Sample.date.addingTimeInterval(60))
        var finished = created(fourthCall, "d", at: Sample.date.addingTimeInterval(-20))
        finished.phase = .cancelled(reason: "test")
        for session in [starting, active, recent, finished] {
            #expect(try await store.compareAndSet(session, expectedVersion: nil))
        }
        return (starting, active)
    }

    @Test func theInMemoryStoreAnswersAsTheDefaultsDo() async throws {
        // Through the protocol, as the coordinator asks: on the actor itself, `try await` picks
        // the protocol extension's default over the actor's own method.
        let store: any PaymentStore = InMemoryPaymentStore()
        let (starting, active) = try await Self.stored(in: store)
        let oracle = DefaultReadsStore(store)
        let cutoff = Sample.date.addingTimeInterval(30)
        #expect(try await store.startingSessions(updatedBefore: cutoff) == [starting])
        #expect(try await oracle.startingSessions(updatedBefore: cutoff) == [starting])
        #expect(try await store.startingSessions(updatedBefore: Sample.date).isEmpty, "strictly before")
        let idle = [IdleSession(active), IdleSession(starting)]
        #expect(try await store.idleSessions(updatedBefore: cutoff) == idle, "least recently changed first")
        #expect(try await oracle.idleSessions(updatedBefore: cutoff) == idle)
        #expect(idle[0].paymentSID != nil && idle[1].paymentSID == nil)
        #expect(try await store.idleSessions(updatedBefore: Sample.date).map(\.id) == [active.id])
    }
}
