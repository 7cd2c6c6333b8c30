import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

@Suite struct PaymentReducerTransitionTests {
    let date = Sample.date

    @Test func creationActivatesTheSession() {
        let fresh = PaymentSession(callSID: Sample.call, configuration: PaymentConfiguration(), at: date)
        #expect(fresh.phase == .starting && fresh.version == 1)
        #expect(fresh.required == [.cardNumber, .securityCode, .expirationDate, .postalCode])
        let created = PaymentReducer.reduce(fresh, .sessionCreated(Sample.payment, at: date))
        #expect(created.session.phase == .active(current: nil) && created.session.paymentSID == Sample.payment)
        #expect(created.session.version == 2 && created.changed)
    }

    @Test func configurationDecidesTheRequiredItems() {
        #expect(
            Sample.cardSession(PaymentSessionOptions(securityCode: false, postalCode: false)).required == [
                .cardNumber, .expirationDate,
            ])
        #expect(Sample.achSession().required == [.bankRoutingNumber, .bankAccountNumber])
    }

    /// (state before, event, expected phase name, expected effect, rejected?)
    static let requestCases: [(String, PaymentEvent, String, PaymentEffect?, Bool)] = [
        ("active", .captureRequested(.cardNumber, at: Sample.date), "active", .send(.capture(.cardNumber)), false),
        ("active", .captureRequested(.securityCode, at: Sample.date), "active", nil, true),
        ("active", .captureRequested(.bankAccountNumber, at: Sample.date), "active", nil, true),
        ("active", .completeRequested(at: Sample.date), "active", nil, true),
        ("active", .cancelRequested(at: Sample.date), "cancelling", .send(.cancel), false),
        ("ready", .completeRequested(at: Sample.date), "completing", .send(.complete), false),
        ("ready", .captureRequested(.securityCode, at: Sample.date), "active", .send(.capture(.securityCode)), false),
        ("completing", .captureRequested(.cardNumber, at: Sample.date), "completing", nil, true),
        ("completing", .completeRequested(at: Sample.date), "completing", nil, false), // a repeat
        ("completing", .cancelRequested(at: Sample.date), "cancelling", .send(.cancel), false),
        ("completed", .cancelRequested(at: Sample.date), "completed", nil, true),
        ("completed", .captureRequested(.cardNumber, at: Sample.date), "completed", nil, true),
        ("cancelled", .completeRequested(at: Sample.date), "cancelled", nil, true),
    ]

    static func session(in state: String) -> PaymentSession {
        let ready = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: Sample.date),
                .callbackReceived(
                    Sample.callback(["Capture": "payment-card-number", "PaymentCardNumber": "xxxxxxxxxxxx1111"]),
                    at: Sample.date),
                .captureRequested(.securityCode, at: Sample.date),
                .callbackReceived(
                    Sample.callback(["Capture": "security-code", "SecurityCode": "xxx"]), at: Sample.date),
                .captureRequested(.expirationDate, at: Sample.date),
                .callbackReceived(
                    Sample.callback(["Capture": "expiration-date", "ExpirationDate": "1230"]), at: Sample.date),
                .captureRequested(.postalCode, at: Sample.date),
                .callbackReceived(
                    Sample.callback(["Capture": "postal-code", "PaymentCardPostalCode": "94105", "Required": ""]),
                    at: Sample.date),
            ])
        switch state {
        case "active": return Sample.cardSession()
        case "ready": return ready
        case "completing": return run(ready, [.completeRequested(at: Sample.date)])
        case "completed":
            return run(
                ready,
                [
                    .completeRequested(at: Sample.date),
                    .callbackReceived(
                        Sample.callback(["Result": "success", "PaymentConfirmationCode": "ch_1"]), at: Sample.date),
                ])
        case "cancelled":
            return run(Sample.cardSession(), [.cancelRequested(at: Sample.date), .cancelAccepted(at: Sample.date)])
        case "failed":
            return run(
                ready,
                [
                    .completeRequested(at: Sample.date),
                    .callbackReceived(
                        Sample.callback(["Result": "payment-connector-error", "PayErrorCode": "64012"]), at: Sample.date
                    ),
                ])
        case "call-ended":
            return run(
                ready, [.requestFailed(.complete, reason: "down", at: Sample.date), .callEnded(at: Sample.date)])
        default: fatalError(state)
        }
    }

    @Test(arguments: requestCases)
    func requestsFollowTheRules(
        state: String, event: PaymentEvent, phase: String, effect: PaymentEffect?, rejected: Bool
    ) {
        let before = Self.session(in: state)
        let transition = PaymentReducer.reduce(before, event)
        #expect(transition.session.phase.name == phase)
        #expect(transition.effects == (effect.map { [$0] } ?? []))
        #expect((transition.rejection != nil) == rejected)
        if rejected { #expect(transition.session == before, "a refused request changes nothing") }
    }

    @Test func completionNamesTheMissingItems() {
        let session = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: date),
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "security-code,expiration-date,postal-code",
                    ]), at: date),
            ])
        let rejection = PaymentReducer.reduce(session, .completeRequested(at: date)).rejection
        #expect(
            rejection?.description
                == "cannot complete yet: the security code, expiration date and postal code are still missing")
    }

    @Test func securityCodeNeedsTheCardNumberFirst() {
        let rejection = PaymentReducer.reduce(Sample.cardSession(), .captureRequested(.securityCode, at: date))
            .rejection
        #expect(rejection?.description.contains("card number before the security code") == true)
    }

    @Test func partialCallbacksShowMaskedProgress() {
        let session = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: date),
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx",
                    ]), at: date),
            ])
        #expect(session.state(.cardNumber) == .capturing(masked: "xxxx"))
        #expect(session.phase == .active(current: .cardNumber))
        #expect(session.nextStep.action == .waitForCaller(.cardNumber) && session.nextStep.waitForCaller)
    }

    @Test func anErrorTypeFailsTheItemAndAllowsReentry() {
        var session = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: date),
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "ErrorType": "invalid-card-number",
                        "Required": "payment-card-number,security-code",
                    ]), at: date),
            ])
        #expect(
            session.state(.cardNumber) == .failed(.invalidCardNumber)
                && session.progress(.cardNumber).failedAttempts == 1)
        #expect(session.lastError == .invalidCardNumber)
        #expect(session.nextStep.action == .capture(.cardNumber) && session.nextStep.topic == .error)
        session = run(
            session,
            [
                .captureRequested(.cardNumber, at: date),
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "false",
                        "PaymentCardNumber": "xxxxxxxxxxxx4242",
                    ]), at: date),
            ])
        #expect(session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx4242") && session.lastError == nil)
        #expect(session.progress(.cardNumber).requests == 2)
    }

    @Test func aLateDuplicateNeverRegressesACapturedItem() {
        let partial = Sample.callback([
            "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xx",
        ])
        let error = Sample.callback(["Capture": "payment-card-number", "ErrorType": "input-timeout"])
        let done = Sample.callback([
            "Capture": "payment-card-number", "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
        ])
        let session = run(
            Sample.cardSession(), [.captureRequested(.cardNumber, at: date), .callbackReceived(done, at: date)])
        for late in [partial, error, done] {
            let transition = PaymentReducer.reduce(session, .callbackReceived(late, at: date))
            #expect(transition.session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
            #expect(!transition.changed)
        }
    }

    @Test(arguments: ["completed", "cancelled", "failed", "call-ended"])
    func aFinishedSessionNeverChanges(state: String) {
        let finished = Self.session(in: state)
        #expect(finished.phase.isFinished && finished.phase.name == state)
        let events: [PaymentEvent] = [
            .callbackReceived(Sample.callback(["Result": "caller-hung-up"]), at: date), .callEnded(at: date),
            .callbackReceived(Sample.callback(["Result": "success", "PaymentToken": "late"]), at: date),
            .callbackReceived(
                Sample.callback(["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "x"]),
                at: date),
            .callbackReceived(Sample.callback(["Required": "payment-card-number"]), at: date),
            .requestFailed(.complete, reason: "x", at: date),
            .requestFailed(.capture(.cardNumber), reason: "y", at: date),
            .captureAccepted(.cardNumber, at: date, twilioDate: date), .completeAccepted(at: date),
            .cancelAccepted(at: date),
            .sessionCreated(PaymentSID(validated: "PK" + String(repeating: "c", count: 32)), at: date),
        ]
        for event in events {
            let transition = PaymentReducer.reduce(finished, event)
            #expect(transition.session == finished, "\(state): \(event)")
            #expect(
                !transition.changed && transition.effects.isEmpty && transition.session.version == finished.version,
                "\(state): \(event)")
        }
        for request in [
            PaymentEvent.captureRequested(.cardNumber, at: date), .completeRequested(at: date),
            .cancelRequested(at: date),
        ] {
            let transition = PaymentReducer.reduce(finished, request)
            // Completing a completed session or cancelling a cancelled one is a repeat (answered with
            // the outcome); every other request on a finished session is refused.
            let isRepeat: Bool
            switch (state, request) {
            case ("completed", .completeRequested), ("cancelled", .cancelRequested): isRepeat = true
            default: isRepeat = false
            }
            #expect(
                (transition.rejection != nil) == !isRepeat && transition.repeated == isRepeat, "\(state): \(request)")
            #expect(transition.effects.isEmpty && transition.session == finished, "\(state): \(request)")
        }
    }

    @Test func callbacksForAnotherSessionAreIgnored() {
        let other = PaymentSID(validated: "PK" + String(repeating: "b", count: 32))
        let transition = PaymentReducer.reduce(
            Sample.cardSession(), .callbackReceived(Sample.callback(["Result": "success"], sid: other), at: date))
        #expect(!transition.changed)
    }

    @Test(arguments: [
        "success", "payment-connector-error", "caller-hung-up", "caller-interrupted-with-star", "mystery",
    ])
    func aCallbackFinishesTheSessionOnlyWhenItNamesTheSessionsPaymentAndCall(result: String) {
        let session = Sample.cardSession()
        let other = PaymentSID(validated: "PK" + String(repeating: "b", count: 32))
        let noSid = PaymentStatusCallback(fields: [("CallSid", Sample.call.rawValue), ("Result", result)])
        let otherPayment = Sample.callback(["Result": result], sid: other)
        let noCall = PaymentStatusCallback(fields: [("Sid", Sample.payment.rawValue), ("Result", result)])
        let otherCall = PaymentStatusCallback(fields: [
            ("Sid", Sample.payment.rawValue), ("CallSid", Sample.otherCall.rawValue), ("Result", result),
        ])
        for callback in [noSid, otherPayment, noCall, otherCall] {
            let transition = PaymentReducer.reduce(session, .callbackReceived(callback, at: date))
            #expect(!transition.changed && !transition.session.phase.isFinished, "\(result): \(callback)")
        }
        let starting = PaymentSession(callSID: Sample.call, configuration: session.configuration, at: date)
        let early = PaymentReducer.reduce(starting, .callbackReceived(Sample.callback(["Result": result]), at: date))
        #expect(!early.session.phase.isFinished, "a session without its payment SID yet is not finished by a callback")
        let named = PaymentReducer.reduce(session, .callbackReceived(Sample.callback(["Result": result]), at: date))
        #expect(named.changed && named.session.phase.isFinished)
    }

    @Test func hangUpAndStarEndTheSession() {
        let hungUp = run(
            Sample.cardSession(), [.callbackReceived(Sample.callback(["Result": "caller-hung-up"]), at: date)])
        #expect(hungUp.phase.name == "call-ended")
        let star = run(
            Sample.cardSession(),
            [.callbackReceived(Sample.callback(["Result": "caller-interrupted-with-star"]), at: date)])
        #expect(star.phase == .cancelled(reason: "the caller pressed star to leave the payment"))
        let ended = run(Sample.cardSession(), [.callEnded(at: date)])
        #expect(ended.phase.name == "call-ended")
    }

    @Test func aFailedRequestRevertsTheOptimisticState() {
        let session = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: date),
                .requestFailed(.capture(.cardNumber), reason: "Twilio error 20404", at: date),
            ])
        #expect(session.state(.cardNumber) == .notRequested && session.phase == .active(current: nil))
        #expect(session.lastRequestError == "Twilio error 20404")
        let cancelling = run(
            Sample.cardSession(), [.cancelRequested(at: date), .requestFailed(.cancel, reason: "down", at: date)])
        #expect(cancelling.phase == .active(current: nil))
    }

    @Test func repeatedRequestsChangeNothingAndSendNothing() {
        // The caller is typing the card number (Twilio accepted the capture: no key in flight).
        let typing = run(
            Sample.cardSession(),
            [
                .captureRequested(.cardNumber, at: date),
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx",
                    ]), at: date),
            ])
        let again = PaymentReducer.reduce(typing, .captureRequested(.cardNumber, at: date, idempotencyKey: "k2"))
        #expect(
            again.repeated && !again.changed && again.effects.isEmpty && again.rejection == nil
                && again.session == typing)
        let restarted = PaymentReducer.reduce(
            typing, .captureRequested(.cardNumber, at: date, idempotencyKey: "k2", restart: true))
        #expect(
            !restarted.repeated && restarted.effects == [.send(.capture(.cardNumber))]
                && restarted.session.state(.cardNumber) == .requested)
        // A capture stored but never answered (its sender died) is sent again with its own key.
        let unanswered = run(Sample.cardSession(), [.captureRequested(.cardNumber, at: date, idempotencyKey: "k1")])
        let retried = PaymentReducer.reduce(unanswered, .captureRequested(.cardNumber, at: date, idempotencyKey: "k2"))
        #expect(
            !retried.repeated && retried.effects == [.send(.capture(.cardNumber))]
                && retried.session.inFlight[.capture(.cardNumber)] == "k1")
        // A captured item is a repeat unless Twilio lists it as required again.
        let captured = run(
            typing,
            [
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "false",
                        "PaymentCardNumber": "xxxxxxxxxxxx1111",
                    ]), at: date)
            ])
        #expect(PaymentReducer.reduce(captured, .captureRequested(.cardNumber, at: date)).repeated)
        let listedAgain = run(
            captured, [.callbackReceived(Sample.callback(["Required": "payment-card-number,security-code"]), at: date)])
        #expect(
            PaymentReducer.reduce(listedAgain, .captureRequested(.cardNumber, at: date)).effects == [
                .send(.capture(.cardNumber))
            ])
        // Completion: a repeat while accepted and under way; sent again (same key) while unanswered.
        let ready = PaymentReducerTransitionTests.session(in: "ready")
        let completing = run(ready, [.completeRequested(at: date, idempotencyKey: "c1")])
        let resent = PaymentReducer.reduce(completing, .completeRequested(at: date, idempotencyKey: "c2"))
        #expect(!resent.repeated && resent.effects == [.send(.complete)] && resent.session.inFlight[.complete] == "c1")
        let accepted = run(completing, [.completeAccepted(at: date)])
        #expect(PaymentReducer.reduce(accepted, .completeRequested(at: date, idempotencyKey: "c3")).repeated)
        // Cancellation likewise.
        let cancelling = run(Sample.cardSession(), [.cancelRequested(at: date, idempotencyKey: "x1")])
        #expect(
            PaymentReducer.reduce(cancelling, .cancelRequested(at: date, idempotencyKey: "x2")).effects == [
                .send(.cancel)
            ])
        #expect(
            PaymentReducer.reduce(run(cancelling, [.cancelAccepted(at: date)]), .cancelRequested(at: date)).repeated)
    }

    @Test func versionsGrowOnlyOnChange() {
        let session = Sample.cardSession()
        let same = PaymentReducer.reduce(session, .captureAccepted(.cardNumber, at: date))
        #expect(!same.changed && same.session.version == session.version)
        let changed = PaymentReducer.reduce(session, .captureRequested(.cardNumber, at: date))
        #expect(changed.session.version == session.version + 1)
    }
}
