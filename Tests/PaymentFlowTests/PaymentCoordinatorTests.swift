import Foundation
import Synchronization
import Testing
@testable import PaymentFlow
import TwilioPayments

@Suite struct PaymentCoordinatorTests {
    let api = FakePaymentsAPI()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/twilio/callbacks/")

    func coordinator() -> PaymentCoordinator {
        PaymentCoordinator(api: api, callbackURLs: callbacks, now: { Sample.date })
    }

    func secret(from url: String) -> String { String(url.split(separator: "/").last!) }

    @Test func startsWithAnUnguessableCallbackURLAndAFreshIdempotencyKey() async throws {
        let flow = coordinator()
        let session = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "5.00"))
        #expect(session.phase == .active(current: nil) && session.paymentSID != nil)
        let create = try #require(api.calls.first)
        #expect(create.operation == "create" && create.idempotencyKey.count == 32)
        #expect(create.statusCallback.hasPrefix("https://example.com/twilio/callbacks/") && secret(from: create.statusCallback).count == 32)
        #expect(await flow.knowsCallbackSecret(secret(from: create.statusCallback)))
        #expect(await !flow.knowsCallbackSecret("0123456789abcdef0123456789abcdef"))
    }

    @Test func oneSessionPerCallAtATime() async throws {
        let flow = coordinator()
        let first = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: first.paymentSID)) {
            try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        }
        _ = try await flow.cancel(paymentSID: first.paymentSID!)
        let second = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        #expect(second.paymentSID != first.paymentSID)
    }

    @Test func aConcurrentSecondStartOnTheSameCallIsRefused() async throws {
        let flow = coordinator()
        var arrivals = api.holdCreates().makeAsyncIterator()
        let first = Task { try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()) }
        _ = await arrivals.next()   // the first create is with Twilio now
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: nil)) {
            try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        }
        api.releaseCreates()
        #expect(try await first.value.paymentSID != nil)
        #expect(api.calls.filter { $0.operation == "create" }.count == 1, "the second start never reached Twilio")
    }

    @Test func capturesThroughTwilioAndAppliesCallbacks() async throws {
        let flow = coordinator()
        let session = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        let sid = try #require(session.paymentSID)
        let url = api.calls[0].statusCallback
        let capturing = try await flow.capture(.cardNumber, paymentSID: sid, callSID: Sample.call)
        #expect(capturing.state(.cardNumber) == .requested)
        #expect(api.calls.last?.operation == "capture:payment-card-number" && api.calls.last?.statusCallback == url)
        #expect(Set(api.calls.map(\.idempotencyKey)).count == 2, "one key per logical operation")

        let accepted = await flow.receiveCallback(secret: secret(from: url), Sample.callback(
            ["Capture": "payment-card-number", "PaymentCardNumber": "4111111111111111", "PartialResult": "false"], sid: sid))
        #expect(accepted)
        let after = try #require(await flow.session(sid))
        #expect(after.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
        #expect(await !flow.receiveCallback(secret: "not-a-secret", Sample.callback([:], sid: sid)))
    }

    @Test func completionIsRefusedWithoutCallingTwilio() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let before = api.calls.count
        do {
            _ = try await flow.complete(paymentSID: sid)
            Issue.record("completed")
        } catch {
            #expect(error.description.contains("card number, security code, expiration date and postal code are still missing"))
        }
        #expect(api.calls.count == before)
    }

    @Test func aTwilioFailureIsReportedAndRevertsTheRequest() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.failNext(with: .api(TwilioAPIError(httpStatus: 404, code: 20404, message: "Not found")))
        await #expect(throws: FlowError.self) { try await flow.capture(.cardNumber, paymentSID: sid) }
        let session = try #require(await flow.session(sid))
        #expect(session.state(.cardNumber) == .notRequested && session.lastRequestError?.contains("20404") == true)
    }

    @Test func earlyCallbacksAreHeldNotLost() async throws {
        let flow = coordinator()
        var arrivals = api.holdCreates().makeAsyncIterator()
        let start = Task { try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()) }
        _ = await arrivals.next()   // Twilio has the create; its answer is held back
        let url = try #require(api.calls.first?.statusCallback)
        let sid = PaymentSID(validated: "PK" + String(repeating: "0", count: 31) + "1")
        #expect(await flow.session(sid) == nil, "the callback below arrives before the session exists")
        #expect(await flow.receiveCallback(secret: secret(from: url), Sample.callback(["Capture": "payment-card-number", "PaymentCardType": "visa"],
                                                                                      sid: sid)))
        api.releaseCreates()
        let session = try await start.value
        #expect(session.cardType == "visa", "the early callback was held and applied")
        #expect(await flow.session(sid)?.cardType == "visa")
    }

    @Test func rejectsAPaymentSIDFromAnotherCall() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        await #expect(throws: FlowError.wrongCall(paymentSID: sid, callSID: Sample.otherCall)) {
            try await flow.capture(.cardNumber, paymentSID: sid, callSID: Sample.otherCall)
        }
        let unknown = PaymentSID(validated: "PK" + String(repeating: "f", count: 32))
        await #expect(throws: FlowError.unknownSession(unknown)) { try await flow.complete(paymentSID: unknown) }
    }

    @Test func waitForChangeReturnsOnChangeOrTimeout() async throws {
        let flow = coordinator()
        let session = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        let sid = try #require(session.paymentSID)
        let timedOut = try #require(await flow.waitForChange(sid, afterVersion: session.version, timeout: .milliseconds(50)))
        #expect(timedOut.version == session.version, "no change: the session as it stands once the time is up")

        // A long poll that has really started waiting is woken by the change (if waking were
        // broken it would sleep its full minute and return the old version).
        let waiter = Task { await flow.waitForChange(sid, afterVersion: session.version, timeout: .seconds(60)) }
        let deadline = ContinuousClock.now + .seconds(10)
        while await flow.waiterCount(sid) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
        #expect(await flow.waiterCount(sid) == 1, "the long poll is waiting")
        _ = try await flow.capture(.cardNumber, paymentSID: sid)
        let changed = try #require(await waiter.value)
        #expect(changed.version > session.version && changed.state(.cardNumber) == .requested)
        #expect(await flow.waiterCount(sid) == 0)
    }

    @Test func theChangeFeedCarriesEverySnapshot() async throws {
        let flow = coordinator()
        let feed = await flow.changes()
        let collector = Task { () -> [UInt64] in
            var versions: [UInt64] = []
            for await session in feed {
                versions.append(session.version)
                if versions.count == 2 { break }
            }
            return versions
        }
        // Bounded: a missing snapshot fails the test instead of hanging it.
        let guardTask = Task {
            try await Task.sleep(for: .seconds(5))
            collector.cancel()
        }
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        _ = try await flow.capture(.cardNumber, paymentSID: sid)   // requested: one change; accepted: none
        let versions = await collector.value
        guardTask.cancel()
        #expect(versions == [2, 3])
    }

    @Test func manyCallsAtOnceNeverMix() async throws {
        let flow = coordinator()
        let calls = (0..<40).map { CallSID(validated: "CA" + String(repeating: "0", count: 30) + String(format: "%02x", $0)) }
        let sessions = try await withThrowingTaskGroup(of: PaymentSession.self) { group in
            for call in calls { group.addTask { try await flow.start(callSID: call, options: PaymentSessionOptions()) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(sessions.compactMap(\.paymentSID)).count == 40)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in sessions {
                group.addTask { _ = try await flow.capture(.cardNumber, paymentSID: session.paymentSID!, callSID: session.callSID) }
            }
            try await group.waitForAll()
        }
        for session in sessions {
            let stored = try #require(await flow.session(session.paymentSID!))
            #expect(stored.callSID == session.callSID && stored.state(.cardNumber) == .requested)
        }
        #expect(await flow.activeSessions().count == 40)
    }

    @Test func aCommandOnACallThatHasEndedEndsTheSession() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.setCallStatus("completed")
        await #expect(throws: FlowError.callEnded(callSID: Sample.call, status: "completed")) {
            try await flow.capture(.cardNumber, paymentSID: sid)
        }
        #expect(await flow.session(sid)?.phase.name == "call-ended")
        #expect(!api.calls.contains { $0.operation.hasPrefix("capture") }, "nothing was sent for a call that is over")
    }

    @Test func cancellingOnACallThatHasEndedReturnsTheEndedSession() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.setCallStatus("no-answer")
        let session = try await flow.cancel(paymentSID: sid)
        #expect(session.phase.name == "call-ended")
    }

    @Test func twilioSayingTheCallIsGoneEndsTheSession() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.failNext(with: .api(TwilioAPIError(httpStatus: 400, code: 21220, message: "Call is not in-progress", moreInfo: nil)))
        await #expect(throws: FlowError.callEnded(callSID: Sample.call, status: nil)) {
            try await flow.capture(.cardNumber, paymentSID: sid)
        }
        #expect(await flow.session(sid)?.phase.name == "call-ended")
    }

    @Test func silentSessionsHaveTheirCallChecked() async throws {
        let clock = Mutex(Sample.date)
        let flow = PaymentCoordinator(api: api, callbackURLs: callbacks, now: { clock.withLock { $0 } })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.setCallStatus("completed")
        #expect(await flow.checkSilentCalls(silentFor: .seconds(30)) == 0, "not silent long enough yet")
        #expect(await flow.session(sid)?.phase.name == "active")
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        #expect(await flow.checkSilentCalls(silentFor: .seconds(30)) == 1)
        let ended = try #require(await flow.session(sid))
        #expect(ended.phase.name == "call-ended" && ended.nextStep.instruction.contains("The call has ended"))
    }

    @Test func aLiveSilentCallIsCheckedOncePerSilence() async throws {
        let clock = Mutex(Sample.date)
        let counting = CountingCallsAPI(inner: api)
        let flow = PaymentCoordinator(api: counting, callbackURLs: callbacks, now: { clock.withLock { $0 } })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        #expect(await flow.checkSilentCalls(silentFor: .seconds(30)) == 0)
        #expect(await flow.checkSilentCalls(silentFor: .seconds(30)) == 0)
        #expect(counting.fetches.withLock { $0 } == 1, "checked again only after another silence")
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        _ = await flow.checkSilentCalls(silentFor: .seconds(30))
        #expect(counting.fetches.withLock { $0 } == 2)
        #expect(await flow.session(sid)?.phase.name == "active")
    }

    @Test func callEndedAndExpiryRetireTheCallbackURL() async throws {
        let retired = RetiringURLs()
        let flow = PaymentCoordinator(api: api, callbackURLs: retired, now: { Sample.date })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = secret(from: api.calls[0].statusCallback)
        #expect(await flow.expireFinished(retention: .seconds(-1)) == 0, "an active session never expires")
        await flow.callEnded(Sample.call)
        #expect(await flow.session(sid)?.phase.name == "call-ended")
        #expect(await flow.expireFinished(retention: .seconds(-1)) == 1)
        #expect(await flow.session(sid) == nil)
        #expect(retired.retired.withLock { $0 } == [secret])
        #expect(await !flow.knowsCallbackSecret(secret))
    }
}

/// Counts Calls API look-ups and passes everything through.
final class CountingCallsAPI: TwilioPaymentsAPI {
    let inner: FakePaymentsAPI
    let fetches = Mutex(0)
    init(inner: FakePaymentsAPI) { self.inner = inner }
    func createPayment(callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String, statusCallback: String) async throws(TwilioError) -> PaymentResource {
        try await inner.createPayment(callSID: callSID, options: options, idempotencyKey: idempotencyKey, statusCallback: statusCallback)
    }
    func updatePayment(callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String, statusCallback: String) async throws(TwilioError) -> PaymentResource {
        try await inner.updatePayment(callSID: callSID, paymentSID: paymentSID, update: update, idempotencyKey: idempotencyKey, statusCallback: statusCallback)
    }
    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        fetches.withLock { $0 += 1 }
        return try await inner.fetchCall(callSID)
    }
}

final class RetiringURLs: CallbackURLProvider {
    let retired = Mutex<[String]>([])
    func callbackURL(secret: String) -> String { "https://example.com/cb/\(secret)" }
    func retire(secret: String) { retired.withLock { $0.append(secret) } }
}

@Suite struct InMemoryPaymentStoreTests {
    @Test func compareAndSetGuardsVersions() async {
        let store = InMemoryPaymentStore()
        let session = Sample.cardSession()
        #expect(await store.compareAndSet(session, expectedVersion: nil))
        #expect(await !store.compareAndSet(session, expectedVersion: nil), "already stored")
        var next = session
        next.version += 1
        #expect(await store.compareAndSet(next, expectedVersion: session.version))
        #expect(await !store.compareAndSet(next, expectedVersion: session.version), "stale expected version")
        var unsaved = PaymentSession(callSID: Sample.call, configuration: PaymentConfiguration(), at: Sample.date)
        unsaved.paymentSID = nil
        #expect(await !store.compareAndSet(unsaved, expectedVersion: nil), "a session needs a payment SID")
    }

    @Test func storesOnlyMaskedValues() async {
        let store = InMemoryPaymentStore()
        var session = Sample.cardSession()
        session.items[.cardNumber] = ItemProgress()
        session.items[.cardNumber]?.state = .captured(masked: "4111111111111111")
        #expect(await store.compareAndSet(session, expectedVersion: nil))
        #expect(await store.session(Sample.payment)?.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111")
    }
}
