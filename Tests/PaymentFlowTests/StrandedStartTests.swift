import Foundation
import Synchronization
import Testing
@testable import PaymentFlow
import TwilioPayments

/// A start whose replica died after storing it and before Twilio answered: replica A's creation
/// is held at its Twilio for ever (A is gone), and replica B, on the same store, settles it once
/// it is older than `strandedAfter`, with the key A stored.
@Suite struct StrandedStartTests {
    let store = InMemoryPaymentStore()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/twilio/callbacks/")
    let deadTwilio = FakePaymentsAPI()
    let twilio = FakePaymentsAPI()
    let trail = AuditTrailTests.MemoryTrail()
    /// B's clock, moved by the tests; A started at `Sample.date`.
    final class WallClock: Sendable {
        let date = Mutex(Sample.date)
        var now: Date { date.withLock { $0 } }
    }
    let clock = WallClock()

    /// Replica B.
    func replica() -> PaymentCoordinator {
        PaymentCoordinator(
            api: twilio, store: store, callbackURLs: callbacks, audit: trail, replica: "b",
            strandedAfter: .seconds(30), now: { [clock] in clock.now })
    }

    /// A start on replica A that stays `starting`: its creation reached A's Twilio and no answer
    /// ever comes back. Returns A's task (released at the end of a test) and the key it stored.
    func strandedStart(
        _ options: PaymentSessionOptions = PaymentSessionOptions()
    ) async throws -> (
        Task<PaymentSession, any Error>, String
    ) {
        let dead = PaymentCoordinator(
            api: deadTwilio, store: store, callbackURLs: callbacks, replica: "a", now: { Sample.date })
        var arrivals = deadTwilio.holdCreates().makeAsyncIterator()
        let task = Task { try await dead.start(callSID: Sample.call, options: options) }
        _ = await arrivals.next()
        let key = try #require(deadTwilio.calls.first?.idempotencyKey)
        return (task, key)
    }

    func later(_ seconds: Double) { clock.date.withLock { $0 = Sample.date.addingTimeInterval(seconds) } }

    @Test func aStartWhoseReplicaDiedIsCreatedAgainWithItsStoredKeyOnceItIsStranded() async throws {
        let (_, key) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        later(29.9)
        #expect(try await b.recoverStrandedStarts() == 0, "not stranded before strandedAfter")
        #expect(twilio.calls.isEmpty)
        later(30)
        #expect(try await b.recoverStrandedStarts() == 1)
        let sent = try #require(twilio.calls.first)
        #expect(sent.operation == "create" && sent.idempotencyKey == key, "the stored key: Twilio creates it once")
        let session = try #require(try await b.sessions(onCall: Sample.call).first)
        #expect(session.phase == .active(current: nil) && session.paymentSID != nil && session.inFlight.isEmpty)
        #expect(try await b.recoverStrandedStarts() == 0, "settled once")
        #expect(twilio.calls.count == 1)
        let recorded = trail.all.filter { $0.entry.action == AuditAction.startRecovered.rawValue }
        #expect(recorded.count == 1 && recorded.first?.entry.outcome == "ok" && recorded.first?.entry.replica == "b")
        #expect(recorded.first?.entry.paymentSID == session.paymentSID?.rawValue)
    }

    @Test func twiliosRefusalFailsTheStrandedSessionWithItsReason() async throws {
        let (_, _) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        later(31)
        twilio.failNext(with: .api(TwilioAPIError(httpStatus: 400, code: 64001, message: "Invalid configuration")))
        #expect(try await b.recoverStrandedStarts() == 1)
        let session = try #require(try await b.sessions(onCall: Sample.call).first)
        guard case .failed(let failure) = session.phase else {
            Issue.record("expected failed, got \(session.phase)")
            return
        }
        #expect(failure.reason.contains("Twilio did not start the payment session"), "\(failure.reason)")
        #expect(trail.all.last?.entry.outcome.hasPrefix("refused: twilio error 64001") == true, "\(trail.all)")
    }

    @Test func aStrandedStartOnACallThatEndedEndsWithItAndSendsNothing() async throws {
        let (_, _) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        later(31)
        twilio.setCallStatus("completed")
        #expect(try await b.recoverStrandedStarts() == 1)
        let session = try #require(try await b.sessions(onCall: Sample.call).first)
        #expect(session.phase.kind == .callEnded, "\(session.phase)")
        #expect(twilio.calls.isEmpty, "no payment is created on a call that is over")
        #expect(trail.all.last?.entry.outcome == "call ended")
    }

    @Test func aNewStartOnTheCallIsAnsweredWithTheStrandedSessionsOutcome() async throws {
        let (_, _) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        let other = PaymentSessionOptions(chargeAmount: "5.00")
        // Young: it may still be being created by its replica; nothing is sent.
        later(10)
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: nil)) {
            try await b.start(callSID: Sample.call, options: other)
        }
        #expect(twilio.calls.isEmpty)
        // Stranded: settled first, then refused naming the session that now runs.
        later(31)
        do {
            _ = try await b.start(callSID: Sample.call, options: other)
            Issue.record("a start over a running session was accepted")
        } catch {
            guard case .sessionInProgress(Sample.call, let sid?) = error else {
                Issue.record("expected sessionInProgress with the recovered SID, got \(error)")
                return
            }
            #expect(try await b.session(sid)?.phase == .active(current: nil))
        }
        #expect(twilio.calls.map(\.operation) == ["create"])
    }

    @Test func aNewStartGoesAheadWhenTheStrandedSessionCannotBeCreated() async throws {
        let (_, _) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        later(31)
        twilio.failNext(with: .api(TwilioAPIError(httpStatus: 400, code: 64001, message: "Invalid configuration")))
        let started = try await b.start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "5.00"))
        #expect(started.phase == .active(current: nil) && started.configuration.options.chargeAmount == "5.00")
        #expect(twilio.calls.map(\.operation) == ["create", "create"], "the recovery, then the new start")
        let sessions = try await b.sessions(onCall: Sample.call)
        #expect(sessions.filter { !$0.phase.isFinished }.count == 1)
    }

    @Test func theSameStartRepeatedResumesTheStrandedSessionWithItsKey() async throws {
        let (_, key) = try await strandedStart()
        defer { deadTwilio.releaseCreates() }
        let b = replica()
        later(1) // at any age: the same request is a retry, and its key makes Twilio create it once
        let resumed = try await b.start(callSID: Sample.call, options: PaymentSessionOptions())
        #expect(resumed.phase == .active(current: nil))
        #expect(twilio.calls.map(\.idempotencyKey) == [key])
    }
}
