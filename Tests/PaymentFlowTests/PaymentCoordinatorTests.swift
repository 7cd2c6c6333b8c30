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
        #expect(
            create.statusCallback.hasPrefix("https://example.com/twilio/callbacks/")
                && secret(from: create.statusCallback).count == 32)
        #expect(try await flow.knowsCallbackSecret(secret(from: create.statusCallback)))
        #expect(try await !flow.knowsCallbackSecret("0123456789abcdef0123456789abcdef"))
    }

    @Test func oneSessionPerCallAtATimeAndARepeatedStartResumesIt() async throws {
        let flow = coordinator()
        let first = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        let creates = api.calls.count
        let again = try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions()))
        #expect(again.repeated && again.session == first, "the same options resume the call's session")
        #expect(api.calls.count == creates, "Twilio is asked nothing")
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: first.paymentSID)) {
            try await flow.start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "5"))
        }
        _ = try await flow.cancel(paymentSID: first.paymentSID!)
        let second = try await flow.start(callSID: Sample.call, options: PaymentSessionOptions())
        #expect(second.paymentSID != first.paymentSID)
    }

    @Test func aConcurrentSecondStartResumesOrIsRefused() async throws {
        let flow = coordinator()
        var arrivals = api.holdCreates().makeAsyncIterator()
        let first = Task { try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()) }
        _ = await arrivals.next() // the first create is with Twilio now
        let retried = try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions()))
        #expect(
            retried.repeated && retried.session.phase == .starting,
            "a retry while Twilio creates it resumes the starting session")
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: nil)) {
            try await flow.start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "1"))
        }
        api.releaseCreates()
        #expect(try await first.value.paymentSID != nil)
        #expect(api.calls.filter { $0.operation == "create" }.count == 1, "the second start never reached Twilio")
    }

    @Test func repeatedCommandsSendNothing() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        _ = try await flow.capture(.cardNumber, paymentSID: sid)
        let sent = api.calls.count
        let repeated = try await flow.perform(
            .capture(.cardNumber, paymentSID: sid, callSID: Sample.call, restart: false))
        #expect(repeated.repeated && repeated.session.state(.cardNumber) == .requested)
        #expect(api.calls.count == sent, "a capture of the item being typed sends nothing")
        let restarted = try await flow.perform(.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: true))
        #expect(
            !restarted.repeated && api.calls.count == sent + 1
                && api.calls.last?.operation == "capture:payment-card-number")
        let cancelled = try await flow.cancel(paymentSID: sid)
        let again = try await flow.perform(.cancel(paymentSID: sid, callSID: nil))
        #expect(
            again.repeated && again.session == cancelled && api.calls.count == sent + 2,
            "a second cancel returns the outcome")
    }

    @Test func aCommandRepeatedWhileItsRequestIsWithTwilioSendsNothing() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        var arrivals = api.holdUpdates().makeAsyncIterator()
        let first = Task { try await flow.capture(.cardNumber, paymentSID: sid) }
        _ = await arrivals.next() // the capture is with Twilio now, unanswered: its key is stored
        let sent = api.calls.count
        let twin = try await flow.perform(.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: false))
        #expect(
            twin.repeated && api.calls.count == sent,
            "this coordinator is sending it: the twin waits for nothing and sends nothing")
        api.releaseUpdates()
        #expect(try await first.value.state(.cardNumber) == .requested)
        #expect(try await flow.session(sid)?.inFlight.isEmpty == true)
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

        let accepted = try await flow.receiveCallback(
            secret: secret(from: url),
            Sample.callback(
                ["Capture": "payment-card-number", "PaymentCardNumber": "4111111111111111", "PartialResult": "false"],
                sid: sid))
        #expect(accepted)
        let after = try #require(await flow.session(sid))
        #expect(after.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
        #expect(try await !flow.receiveCallback(secret: "not-a-secret", Sample.callback([:], sid: sid)))
    }

    @Test func aCallbackKnowingOnlyTheURLCannotFinishTheSession() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = secret(from: api.calls[0].statusCallback)
        // No Auth Token signs callbacks here: the URL's secret is all a sender needs to be heard.
        let forged = PaymentStatusCallback(fields: [("Result", "success"), ("PaymentConfirmationCode", "forged")])
        _ = try await flow.receiveCallback(secret: secret, forged)
        #expect(try await flow.session(sid)?.phase == .active(current: nil), "no Sid: not applied")
        let another = PaymentSID(validated: "PK" + String(repeating: "b", count: 32))
        _ = try await flow.receiveCallback(secret: secret, Sample.callback(["Result": "success"], sid: another))
        #expect(try await flow.session(sid)?.phase == .active(current: nil), "another payment's Sid: not applied")
        _ = try await flow.receiveCallback(
            secret: secret, Sample.callback(["Result": "success", "PaymentConfirmationCode": "ch_1"], sid: sid))
        #expect(try await flow.session(sid)?.phase.name == "completed", "the session's own Sid and call: finished")
    }

    @Test func completionIsRefusedWithoutCallingTwilio() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let before = api.calls.count
        do {
            _ = try await flow.complete(paymentSID: sid)
            Issue.record("completed")
        } catch {
            #expect(
                error.description.contains(
                    "card number, security code, expiration date and postal code are still missing"))
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
        _ = await arrivals.next() // Twilio has the create; its answer is held back
        let url = try #require(api.calls.first?.statusCallback)
        let sid = PaymentSID(validated: "PK" + String(repeating: "0", count: 31) + "1")
        #expect(try await flow.session(sid) == nil, "the callback below arrives before the session exists")
        #expect(
            try await flow.receiveCallback(
                secret: secret(from: url),
                Sample.callback(
                    ["Capture": "payment-card-number", "PaymentCardType": "visa"],
                    sid: sid)))
        api.releaseCreates()
        let session = try await start.value
        #expect(session.cardType == "visa", "the early callback was held and applied")
        #expect(try await flow.session(sid)?.cardType == "visa")
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
        let timedOut = try #require(
            await flow.waitForChange(sid, afterVersion: session.version, timeout: .milliseconds(50)))
        #expect(timedOut.version == session.version, "no change: the session as it stands once the time is up")

        // A long poll that has really started waiting is woken by the change (if waking were
        // broken it would sleep its full minute and return the old version).
        let waiter = Task { try await flow.waitForChange(sid, afterVersion: session.version, timeout: .seconds(60)) }
        let deadline = ContinuousClock.now + .seconds(30)
        while await flow.waiterCount(sid) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
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
                if versions.count == 4 { break }
            }
            return versions
        }
        // Bounded: a missing snapshot fails the test instead of hanging it.
        let guardTask = Task {
            try await Task.sleep(for: .seconds(5))
            collector.cancel()
        }
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        _ = try await flow.capture(.cardNumber, paymentSID: sid)
        let versions = await collector.value
        guardTask.cancel()
        // Stored before Twilio is asked, created, capture requested (with its key), accepted.
        #expect(versions == [1, 2, 3, 4])
    }

    @Test func manyCallsAtOnceNeverMix() async throws {
        let flow = coordinator()
        let calls = (0..<40).map {
            CallSID(validated: "CA" + String(repeating: "0", count: 30) + String(format: "%02x", $0))
        }
        let sessions = try await withThrowingTaskGroup(of: PaymentSession.self) { group in
            for call in calls {
                group.addTask { try await flow.start(callSID: call, options: PaymentSessionOptions()) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(sessions.compactMap(\.paymentSID)).count == 40)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in sessions {
                group.addTask {
                    _ = try await flow.capture(.cardNumber, paymentSID: session.paymentSID!, callSID: session.callSID)
                }
            }
            try await group.waitForAll()
        }
        for session in sessions {
            let stored = try #require(await flow.session(session.paymentSID!))
            #expect(stored.callSID == session.callSID && stored.state(.cardNumber) == .requested)
        }
        #expect(try await flow.activeSessions().count == 40)
    }

    @Test func aCommandOnACallThatHasEndedEndsTheSession() async throws {
        let flow = coordinator()
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.setCallStatus("completed")
        await #expect(throws: FlowError.callEnded(callSID: Sample.call, status: "completed")) {
            try await flow.capture(.cardNumber, paymentSID: sid)
        }
        #expect(try await flow.session(sid)?.phase.name == "call-ended")
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
        api.failNext(
            with: .api(TwilioAPIError(httpStatus: 400, code: 21220, message: "Call is not in-progress", moreInfo: nil)))
        await #expect(throws: FlowError.callEnded(callSID: Sample.call, status: nil)) {
            try await flow.capture(.cardNumber, paymentSID: sid)
        }
        #expect(try await flow.session(sid)?.phase.name == "call-ended")
    }

    @Test func silentSessionsHaveTheirCallChecked() async throws {
        let clock = Mutex(Sample.date)
        let flow = PaymentCoordinator(api: api, callbackURLs: callbacks, now: { clock.withLock { $0 } })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        api.setCallStatus("completed")
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0, "not silent long enough yet")
        #expect(try await flow.session(sid)?.phase.name == "active")
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 1)
        let ended = try #require(await flow.session(sid))
        #expect(ended.phase.name == "call-ended" && ended.nextStep.instruction.contains("The call has ended"))
    }

    @Test func aLiveSilentCallIsCheckedOncePerSilence() async throws {
        let clock = Mutex(Sample.date)
        let counting = CountingCallsAPI(inner: api)
        let flow = PaymentCoordinator(api: counting, callbackURLs: callbacks, now: { clock.withLock { $0 } })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0)
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0)
        #expect(counting.fetches.withLock { $0 } == 1, "checked again only after another silence")
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        _ = try await flow.checkSilentCalls(silentFor: .seconds(30))
        #expect(counting.fetches.withLock { $0 } == 2)
        #expect(try await flow.session(sid)?.phase.name == "active")
    }

    @Test func aSilentCallSweepReadsTheStoreOnceHoweverManyChecksItRemembers() async throws {
        let clock = Mutex(Sample.date)
        let store = DefaultReadsStore(InMemoryPaymentStore())
        let flow = PaymentCoordinator(api: api, store: store, callbackURLs: callbacks, now: { clock.withLock { $0 } })
        for call in [Sample.call, Sample.otherCall, SweepReadTests.thirdCall] {
            _ = try await flow.start(callSID: call, options: PaymentSessionOptions())
        }
        clock.withLock { $0 = $0.addingTimeInterval(31) }
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0, "three live calls checked")
        let before = store.total
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0, "checked within the silence")
        #expect(store.total - before == 1, "one read for the sweep, none per remembered check")
        try await flow.callEnded(Sample.call)
        let afterEnd = store.total
        #expect(try await flow.checkSilentCalls(silentFor: .seconds(30)) == 0)
        #expect(store.total - afterEnd == 1)
    }

    @Test func callEndedAndExpiryRetireTheCallbackURL() async throws {
        let flow = PaymentCoordinator(api: api, callbackURLs: callbacks, now: { Sample.date })
        let sid = try #require(try await flow.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        let secret = secret(from: api.calls[0].statusCallback)
        #expect(try await flow.expireFinished(retention: .seconds(-1)) == 0, "an active session never expires")
        try await flow.callEnded(Sample.call)
        #expect(try await flow.session(sid)?.phase.name == "call-ended")
        #expect(try await flow.expireFinished(retention: .seconds(-1)) == 1)
        #expect(try await flow.session(sid) == nil)
        #expect(try await !flow.knowsCallbackSecret(secret), "an expired session's URL is no longer accepted")
    }
}

/// Counts Calls API look-ups and passes everything through.
final class CountingCallsAPI: TwilioPaymentsAPI {
    let inner: FakePaymentsAPI
    let fetches = Mutex(0)
    init(inner: FakePaymentsAPI) { self.inner = inner }
    func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String, statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        try await inner.createPayment(
            callSID: callSID, options: options, idempotencyKey: idempotencyKey, statusCallback: statusCallback)
    }
    func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String, statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        try await inner.updatePayment(
            callSID: callSID, paymentSID: paymentSID, update: update, idempotencyKey: idempotencyKey,
            statusCallback: statusCallback)
    }
    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        fetches.withLock { $0 += 1 }
        return try await inner.fetchCall(callSID)
    }
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

/// The replica seam: everything a session needs lives in the store, so a second coordinator
/// (another replica) sharing the store and feed can take over any part of a payment.
@Suite struct ReplicaSeamTests {
    let api = FakePaymentsAPI()
    let store = InMemoryPaymentStore()
    let feed = InMemoryChangeFeed()
    let callbacks = StaticCallbackURLProvider(baseURL: "https://example.com/twilio/callbacks/")

    func replica() -> PaymentCoordinator {
        PaymentCoordinator(api: api, store: store, feed: feed, callbackURLs: callbacks, now: { Sample.date })
    }

    @Test func theStoreHoldsTheSecretsHashTheURLAndNotTheSecret() async throws {
        let session = try await replica().start(callSID: Sample.call, options: PaymentSessionOptions())
        let url = try #require(api.calls.first?.statusCallback)
        let secret = String(url.split(separator: "/").last!)
        let stored = try #require(await store.session(session.paymentSID!))
        #expect(stored.callbackSecretHash == CallbackSecretHash.of(secret))
        #expect(!"\(stored)".contains(secret), "the secret itself is stored nowhere")
        #expect(await store.session(callbackSecretHash: CallbackSecretHash.of(secret))?.id == stored.id)
    }

    @Test func aCallbackTakenByAnotherReplicaReachesTheSession() async throws {
        let a = replica(), b = replica()
        let session = try await a.start(callSID: Sample.call, options: PaymentSessionOptions())
        let sid = try #require(session.paymentSID)
        _ = try await a.capture(.cardNumber, paymentSID: sid)
        let secret = String(api.calls[0].statusCallback.split(separator: "/").last!)
        #expect(try await b.knowsCallbackSecret(secret))
        let before = try #require(await a.session(sid)).version
        let waiter = Task { try await a.waitForChange(sid, afterVersion: before, timeout: .seconds(30)) }
        let deadline = ContinuousClock.now + .seconds(30)
        while await a.waiterCount(sid) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(
            try await b.receiveCallback(
                secret: secret,
                Sample.callback(
                    [
                        "Capture": "payment-card-number", "PartialResult": "false",
                        "PaymentCardNumber": "xxxxxxxxxxxx1111", "Required": "",
                    ], sid: sid)))
        let woken = try #require(await waiter.value)
        #expect(
            woken.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"), "A's long poll woke for B's callback")
        // And B can finish what A started.
        let completed = try await b.complete(paymentSID: sid)
        #expect(completed.phase.name == "completing")
    }

    /// Status reads answer from a published snapshot only while the coordinator follows the
    /// change feed, so another replica's change is never hidden behind a stale copy.
    @Test func thePublishedSnapshotFollowsOtherReplicasOrIsNotUsed() async throws {
        let a = replica(), b = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        #expect(a.publishedSession(sid) == nil, "not following: no snapshot")
        _ = try await b.capture(.cardNumber, paymentSID: sid)
        #expect(
            try await a.latestSession(sid)?.state(.cardNumber) == .requested, "without a snapshot, the store answers")

        let follower = Task { await a.followChanges() }
        // Following once the feed has a subscriber beyond the long polls: B's next change reaches A.
        // (30 s: a 2-core machine starting PostgreSQL clusters for other suites once took 10.)
        let deadline = ContinuousClock.now + .seconds(30)
        var seen: PaymentSession?
        while seen == nil, ContinuousClock.now < deadline {
            _ = try await b.receiveCallback(
                secret: String(api.calls[0].statusCallback.split(separator: "/").last!),
                Sample.callback(
                    [
                        "Capture": "payment-card-number", "PartialResult": "true",
                        "PaymentCardNumber": "xxxx", "Required": "payment-card-number",
                    ], sid: sid))
            seen = a.publishedSession(sid)
            if seen == nil { try await Task.sleep(for: .milliseconds(1)) }
        }
        _ = try #require(seen, "A's snapshot heard B's change through the feed")
        // The feed delivers asynchronously: the snapshot catches up with the store's last version.
        let stored = try #require(await store.session(sid))
        while a.publishedSession(sid)?.version != stored.version, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(a.publishedSession(sid) == stored, "the snapshot is the stored session")
        follower.cancel()
        _ = await follower.value
        #expect(a.publishedSession(sid) == nil, "no longer following: no snapshot")
    }

    @Test func aRetryFromAnotherReplicaReusesTheStoredIdempotencyKey() async throws {
        let a = replica(), b = replica()
        let sid = try #require(try await a.start(callSID: Sample.call, options: PaymentSessionOptions()).paymentSID)
        // A stores its intent (with its key) and dies before Twilio answers: simulated by a
        // request that fails with no answer, after which the key must be gone...
        api.failNext(with: .transport("connection reset", attempts: 4))
        await #expect(throws: FlowError.self) { try await a.capture(.cardNumber, paymentSID: sid) }
        #expect(await store.session(sid)?.inFlight.isEmpty == true, "an answered failure clears the key")
        // ...whereas an intent stored but never answered keeps it, and B's retry sends the same one.
        var stored = try #require(await store.session(sid))
        let intent = PaymentReducer.reduce(
            stored, .captureRequested(.cardNumber, at: Sample.date, idempotencyKey: "key-from-replica-a"))
        #expect(await store.compareAndSet(intent.session, expectedVersion: stored.version))
        _ = try await b.capture(.cardNumber, paymentSID: sid)
        #expect(
            api.calls.last?.operation == "capture:payment-card-number"
                && api.calls.last?.idempotencyKey == "key-from-replica-a")
        stored = try #require(await store.session(sid))
        #expect(stored.inFlight.isEmpty, "Twilio's answer settles it")
    }

    @Test func oneUnfinishedSessionPerCallAcrossReplicas() async throws {
        let a = replica(), b = replica()
        let first = try await a.start(callSID: Sample.call, options: PaymentSessionOptions())
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: first.paymentSID)) {
            try await b.start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "2"))
        }
        #expect(
            try await b.perform(.start(callSID: Sample.call, options: PaymentSessionOptions())).repeated,
            "a retry on another replica resumes it")
        var racing = PaymentSession(callSID: Sample.call, configuration: PaymentConfiguration(), at: Sample.date)
        racing.paymentSID = PaymentSID(validated: "PK" + String(repeating: "e", count: 32))
        #expect(await !store.compareAndSet(racing, expectedVersion: nil), "the store itself refuses a second one")
    }
}
