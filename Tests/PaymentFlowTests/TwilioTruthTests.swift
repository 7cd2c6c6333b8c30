import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

/// The reducer believes only what Twilio says: an item is captured when Twilio says so, every
/// item in Twilio's latest `Required` is missing, stale callbacks of an earlier attempt change
/// nothing, and every spelling Twilio may use is understood.
@Suite struct TwilioTruthTests {
    let date = Sample.date

    /// A callback for `item` with `fields`.
    func on(_ item: PaymentItem, _ fields: [String: String]) -> PaymentEvent {
        var all = fields
        all["Capture"] = item.rawValue
        return .callbackReceived(Sample.callback(all), at: date)
    }

    func requesting(_ item: PaymentItem, in session: PaymentSession = Sample.cardSession()) -> PaymentSession {
        run(session, [.captureRequested(item, at: date)])
    }

    // MARK: When an item is captured

    /// One row per shape a callback for the card number can take, and the state it leaves.
    static let rows: [(name: String, fields: [String: String], expected: ItemState)] = [
        (
            "capture-time, PartialResult absent", ["Required": "payment-card-number,security-code"],
            .capturing(masked: nil)
        ),
        (
            "capture-time, PartialResult true",
            ["PartialResult": "true", "Required": "payment-card-number,security-code"], .capturing(masked: nil)
        ),
        ("capture-time, no Required at all", [:], .capturing(masked: nil)),
        ("keypress", ["PartialResult": "true", "PaymentCardNumber": "xxxx"], .capturing(masked: "xxxx")),
        (
            "final, PartialResult false",
            ["PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111", "Required": "security-code"],
            .captured(masked: "xxxxxxxxxxxx1111")
        ),
        (
            "final, PartialResult false, no Required",
            ["PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111"], .captured(masked: "xxxxxxxxxxxx1111")
        ),
        (
            "value, no PartialResult, gone from Required",
            ["PaymentCardNumber": "xxxxxxxxxxxx1111", "Required": "security-code"],
            .captured(masked: "xxxxxxxxxxxx1111")
        ),
        (
            "value, no PartialResult, still in Required",
            ["PaymentCardNumber": "xxxxxxxxxxxx1111", "Required": "payment-card-number,security-code"],
            .capturing(masked: "xxxxxxxxxxxx1111")
        ),
        (
            "value, no PartialResult, no Required", ["PaymentCardNumber": "xxxxxxxxxxxx1111"],
            .capturing(masked: "xxxxxxxxxxxx1111")
        ),
        (
            "PartialResult false, no value, still in Required",
            ["PartialResult": "false", "Required": "payment-card-number"], .capturing(masked: nil)
        ),
        (
            "error", ["PartialResult": "false", "ErrorType": "invalid-card-number", "Required": "payment-card-number"],
            .failed(.invalidCardNumber)
        ),
        ("error, PascalCase", ["ErrorType": "InvalidCardNumber"], .failed(.invalidCardNumber)),
        (
            "unfull digits are masked", ["PartialResult": "false", "PaymentCardNumber": "4111111111111111"],
            .captured(masked: "xxxxxxxxxxxx1111")
        ),
    ]

    @Test func everyShapeOfCallbackLeavesTheStateTwilioMeans() {
        for row in Self.rows {
            let session = run(requesting(.cardNumber), [on(.cardNumber, row.fields)])
            #expect(session.state(.cardNumber) == row.expected, "\(row.name)")
        }
    }

    @Test func aCaptureTimeCallbackNeitherAdvancesNorBlocksLaterKeypresses() {
        var session = run(
            requesting(.cardNumber),
            [on(.cardNumber, ["Required": "payment-card-number,security-code,expiration-date"])])
        #expect(session.state(.cardNumber) == .capturing(masked: nil))
        #expect(
            session.nextStep.action == .waitForCaller(.cardNumber) && session.nextStep.waitForCaller,
            "the caller is still typing")
        #expect(PaymentReducer.reduce(session, .completeRequested(at: date)).rejection != nil)
        session = run(
            session,
            [
                on(.cardNumber, ["PartialResult": "true", "PaymentCardNumber": "xx"]),
                on(
                    .cardNumber,
                    [
                        "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "security-code,expiration-date",
                    ]),
            ])
        #expect(session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
        #expect(session.nextStep.action == .capture(.securityCode))
    }

    @Test func aValueIsCapturedOnceALaterRequiredNoLongerListsIt() {
        // The reading where the final keypress callback carries no PartialResult and the
        // shorter Required comes in a later callback.
        let session = run(
            requesting(.cardNumber),
            [
                on(
                    .cardNumber,
                    [
                        "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "payment-card-number,security-code,expiration-date",
                    ]),
                .callbackReceived(Sample.callback(["Required": "security-code,expiration-date"]), at: date),
            ])
        #expect(session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
        let stillTyping = run(
            requesting(.cardNumber),
            [
                on(.cardNumber, ["PartialResult": "true", "PaymentCardNumber": "xxxx"]),
                .callbackReceived(Sample.callback(["Required": "security-code,expiration-date"]), at: date),
            ])
        #expect(stillTyping.state(.cardNumber) == .capturing(masked: "xxxx"), "an explicit partial stays partial")
    }

    // MARK: What is missing

    @Test func everyItemInTwilioLatestRequiredIsMissing() {
        var session = run(
            requesting(.cardNumber),
            [
                on(
                    .cardNumber,
                    [
                        "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "security-code,expiration-date",
                    ])
            ])
        #expect(session.missingItems == [.securityCode, .expirationDate] && session.requiredFromTwilio)
        // Twilio asks again for the card number (it had accepted it): it is missing again.
        session = run(
            session,
            [
                .callbackReceived(
                    Sample.callback(["Required": "payment-card-number,security-code,expiration-date"]), at: date)
            ])
        #expect(session.missingItems == [.cardNumber, .securityCode, .expirationDate])
        #expect(session.nextStep.action == .capture(.cardNumber))
        // An item the options did not ask for but Twilio requires counts too.
        session = run(session, [.callbackReceived(Sample.callback(["Required": "postal-code"]), at: date)])
        #expect(session.missingItems == [.postalCode])
        // And an empty Required means nothing is left.
        session = run(session, [.callbackReceived(Sample.callback(["Required": ""]), at: date)])
        #expect(session.missingItems.isEmpty)
    }

    @Test func anOlderRequiredNeverReplacesANewerOne() {
        let older = Sample.callback(["Required": "payment-card-number,security-code"])
        let newer = Sample.callback(["Required": "security-code"])
        let inOrder = run(
            Sample.cardSession(), [.callbackReceived(older, at: date), .callbackReceived(newer, at: date)])
        let reversed = run(
            Sample.cardSession(), [.callbackReceived(newer, at: date), .callbackReceived(older, at: date)])
        #expect(inOrder.required == [.securityCode] && reversed.required == [.securityCode])
    }

    @Test(arguments: [
        "ExpirationDate", "expiration-date", "expiration_date", "expirationDate", " ExpirationDate , PostalCode ",
        "expiration-date;postal-code", "EXPIRATION-DATE",
    ])
    func requiredIsUnderstoodInEverySpelling(spelling: String) {
        let callback = PaymentStatusCallback(fields: [("Required", spelling)])
        #expect(callback.required.first == .expirationDate && callback.unrecognizedRequired.isEmpty, "\(spelling)")
        let session = run(Sample.cardSession(), [.callbackReceived(Sample.callback(["Required": spelling]), at: date)])
        #expect(
            session.missingItems.first == .expirationDate,
            "Twilio's own example spelling must not read as 'nothing missing'")
    }

    @Test func repeatedRequiredFieldsAreMerged() {
        let callback = PaymentStatusCallback(fields: [
            ("Required", "PaymentCardNumber"), ("Capture", "payment-card-number"),
            ("Required", "SecurityCode"), ("Required", "payment-card-number"),
        ])
        #expect(callback.required == [.cardNumber, .securityCode])
        #expect(callback.requiredRaw == ["PaymentCardNumber", "SecurityCode", "payment-card-number"])
    }

    @Test func unknownTokensAreKeptAndNeverEmptyTheList() {
        let callback = PaymentStatusCallback(fields: [
            ("Required", "payment-card-number,loyalty-pin"), ("Capture", "retina-scan"),
            ("ErrorType", "cosmic-ray"),
        ])
        #expect(callback.required == [.cardNumber] && callback.unrecognizedRequired == ["loyalty-pin"])
        #expect(callback.capture == nil && callback.unrecognizedCapture == "retina-scan")
        #expect(callback.errorType == .other("cosmic-ray"))
        #expect(callback.unrecognizedValues.count == 3)
        let before = run(
            Sample.cardSession(),
            [.callbackReceived(Sample.callback(["Required": "security-code,expiration-date"]), at: date)])
        let after = run(before, [.callbackReceived(Sample.callback(["Required": "loyalty-pin"]), at: date)])
        #expect(
            after.missingItems == [.securityCode, .expirationDate],
            "a list of only unknown tokens does not empty what is missing")
        #expect(after.unrecognizedRequired == ["loyalty-pin"])
    }

    @Test func captureAndErrorNamesAreNormalised() {
        for spelling in ["payment-card-number", "PaymentCardNumber", "payment_card_number", "paymentCardNumber"] {
            #expect(PaymentItem(twilioName: spelling) == .cardNumber, "\(spelling)")
        }
        #expect(PaymentItem(twilioName: "PaymentCardPostalCode") == .postalCode)
        #expect(PaymentItem(twilioName: "SecurityCodeMatcher") == .securityCodeMatcher)
        #expect(
            PaymentErrorType(rawValue: "InputTimeout") == .inputTimeout
                && PaymentErrorType(rawValue: "input_timeout") == .inputTimeout)
        #expect(PaymentResult(rawValue: "CallerHungUp") == .callerHungUp)
    }

    // MARK: Attempts

    @Test func aCapturedItemCanBeCapturedAgainWhenRestarted() {
        var session = run(
            requesting(.cardNumber),
            [on(.cardNumber, ["PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111"])])
        #expect(
            PaymentReducer.reduce(session, .captureRequested(.cardNumber, at: date)).repeated,
            "without restart, a repeat")
        session = run(session, [.captureRequested(.cardNumber, at: date, restart: true)])
        #expect(session.state(.cardNumber) == .requested && session.progress(.cardNumber).requests == 2)
        session = run(session, [on(.cardNumber, ["PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx4444"])])
        #expect(session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx4444"))
    }

    @Test func aStaleErrorOfAnEarlierAttemptDoesNotFailTheNewOne() {
        // Attempt 1 times out; its error is stamped 10:00:01.500 but arrives late.
        let base = date
        func stamp(_ seconds: Double) -> String {
            Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(base.addingTimeInterval(seconds))
        }
        let lateError = on(.cardNumber, ["ErrorType": "input-timeout", "DateUpdated": stamp(1.5)])
        var session = run(
            requesting(.cardNumber),
            [on(.cardNumber, ["PartialResult": "true", "PaymentCardNumber": "x", "DateUpdated": stamp(1)])])
        // The agent asks again; Twilio accepts at 10:00:03 and calls back at capture time.
        session = run(
            session,
            [
                .captureRequested(.cardNumber, at: base, restart: true),
                .captureAccepted(.cardNumber, at: base, twilioDate: base.addingTimeInterval(3)),
            ])
        session = run(session, [lateError])
        #expect(session.state(.cardNumber) == .requested, "the stale error is ignored: \(session.state(.cardNumber))")
        #expect(session.progress(.cardNumber).failedAttempts == 0)
        // A genuine error of the new attempt still counts.
        session = run(session, [on(.cardNumber, ["ErrorType": "input-timeout", "DateUpdated": stamp(9)])])
        #expect(
            session.state(.cardNumber) == .failed(.inputTimeout) && session.progress(.cardNumber).failedAttempts == 1)
    }

    @Test func theCaptureTimeCallbackMarksWhereAnAttemptBegins() {
        func stamp(_ seconds: Double) -> String {
            Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date.addingTimeInterval(seconds))
        }
        // No date on Twilio's answer (a reading where it is absent): the capture-time callback of
        // the new attempt, at 3.2 s, marks its start; an error stamped 3.1 s belongs to the old one.
        var session = run(
            requesting(.cardNumber),
            [
                .captureAccepted(.cardNumber, at: date, twilioDate: nil),
                on(.cardNumber, ["Required": "payment-card-number", "DateUpdated": stamp(3.2)]),
            ])
        session = run(session, [on(.cardNumber, ["ErrorType": "input-timeout", "DateUpdated": stamp(3.1)])])
        #expect(session.state(.cardNumber) == .capturing(masked: nil))
        session = run(
            session,
            [
                on(
                    .cardNumber,
                    ["PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111", "DateUpdated": stamp(4)])
            ])
        #expect(session.state(.cardNumber) == .captured(masked: "xxxxxxxxxxxx1111"))
    }

    @Test func withoutDatesOrderOfArrivalDecides() {
        let session = run(
            requesting(.cardNumber), [on(.cardNumber, ["ErrorType": "input-timeout", "DateUpdated": ""])])
        #expect(session.state(.cardNumber) == .failed(.inputTimeout))
    }

    // MARK: Matching inputs

    @Test func matchingInputsAreItemsOfTheirOwn() {
        let options = PaymentSessionOptions(
            chargeAmount: "1", postalCode: false, requireMatchingInputs: [.paymentCardNumber])
        var session = Sample.cardSession(options)
        #expect(session.required == [.cardNumber, .cardNumberMatcher, .securityCode, .expirationDate])
        #expect(
            PaymentReducer.reduce(session, .captureRequested(.cardNumberMatcher, at: date)).rejection != nil,
            "first entry first")
        session = run(
            session,
            [
                .captureRequested(.cardNumber, at: date),
                on(
                    .cardNumber,
                    [
                        "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "payment-card-number-matcher,security-code,expiration-date",
                    ]),
            ])
        #expect(
            session.nextStep.action == .capture(.cardNumberMatcher)
                && session.nextStep.captureType == .cardNumberMatcher)
        session = run(
            session,
            [
                .captureRequested(.cardNumberMatcher, at: date),
                on(
                    .cardNumberMatcher,
                    [
                        "PartialResult": "false", "ErrorType": "input-matching-failed",
                        "Required": "payment-card-number,payment-card-number-matcher,security-code,expiration-date",
                    ]),
            ])
        #expect(session.state(.cardNumberMatcher) == .failed(.inputMatchingFailed))
        #expect(
            session.nextStep.action == .capture(.cardNumber) && session.nextStep.captureType == nil,
            "Twilio wants the first entry again")
        session = run(
            session,
            [
                .captureRequested(.cardNumber, at: date),
                on(
                    .cardNumber,
                    [
                        "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
                        "Required": "payment-card-number-matcher,security-code,expiration-date",
                    ]),
                .captureRequested(.cardNumberMatcher, at: date),
                on(
                    .cardNumberMatcher,
                    [
                        "PartialResult": "false", "PaymentCardNumber": "4111111111111111",
                        "Required": "security-code,expiration-date",
                    ]),
            ])
        #expect(session.state(.cardNumberMatcher) == .captured(masked: "xxxxxxxxxxxx1111"), "masked like its item")
        #expect(session.missingItems == [.securityCode, .expirationDate])
    }

    // MARK: The end of the call

    @Test func aCallThatEndsEndsTheSessionAsCallEnded() {
        let session = run(requesting(.expirationDate), [.callEnded(at: date, status: "completed")])
        guard case .callEnded(let failure) = session.phase else {
            Issue.record("\(session.phase)")
            return
        }
        #expect(failure.reason.contains("completed") && session.state(.expirationDate) == .notRequested)
        #expect(session.nextStep.action == .callOver && session.nextStep.instruction.contains("The call has ended"))
        #expect(PaymentReducer.reduce(session, .captureRequested(.cardNumber, at: date)).rejection != nil)
        #expect(PaymentReducer.reduce(session, .cancelRequested(at: date)).rejection != nil)
    }

    // MARK: Typed refusals

    @Test func refusalsSayWhichRuleInACaseAHostCanSwitchOn() async throws {
        let session = Sample.cardSession(PaymentSessionOptions(postalCode: false))
        #expect(
            PaymentReducer.reduce(session, .completeRequested(at: date)).rejection
                == .itemsMissing([.cardNumber, .securityCode, .expirationDate]))
        #expect(
            PaymentReducer.reduce(session, .captureRequested(.securityCode, at: date)).rejection
                == .outOfOrder(.securityCode, first: .cardNumber))
        #expect(
            PaymentReducer.reduce(session, .captureRequested(.bankAccountNumber, at: date)).rejection
                == .notApplicable(.bankAccountNumber, .creditCard))
        let typing = requesting(.cardNumber, in: session)
        #expect(
            PaymentReducer.reduce(typing, .captureRequested(.expirationDate, at: date)).rejection
                == .itemInProgress(.cardNumber, requested: .expirationDate))
        let fresh = PaymentSession(callSID: Sample.call, configuration: PaymentConfiguration(), at: date)
        #expect(PaymentReducer.reduce(fresh, .cancelRequested(at: date)).rejection == .stillStarting)
        let ended = run(session, [.callEnded(at: date)])
        #expect(PaymentReducer.reduce(ended, .completeRequested(at: date)).rejection == .finished(phase: "call-ended"))
        #expect(
            !FlowRejection.finished(phase: "cancelled").description.contains("startPaymentCapture"),
            "the flow names no MCP tool")

        let flow = PaymentCoordinator(
            api: FakePaymentsAPI(), callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.com/cb"))
        let sid = try #require(
            try await flow.start(callSID: Sample.call, options: PaymentSessionOptions(postalCode: false)).paymentSID)
        await #expect(throws: FlowError.rejected(.itemsMissing([.cardNumber, .securityCode, .expirationDate]))) {
            try await flow.complete(paymentSID: sid)
        }
        await #expect(throws: FlowError.invalidOptions(["timeout must be between 1 and 600 seconds, got 0"])) {
            try await flow.start(callSID: Sample.otherCall, options: PaymentSessionOptions(timeout: 0))
        }
    }

    // MARK: Amounts and wording

    @Test func zeroTokenizesAndAmountsStayExact() {
        #expect(
            PaymentSessionOptions(chargeAmount: "0").validate().isEmpty
                && !PaymentSessionOptions(chargeAmount: "0.00").isCharge)
        #expect(PaymentSessionOptions(chargeAmount: "0.01").isCharge)
        #expect(!PaymentSessionOptions(chargeAmount: "1000000").validate().isEmpty)
        #expect(
            !PaymentSessionOptions(chargeAmount: "-1").validate().isEmpty
                && !PaymentSessionOptions(chargeAmount: "1e3").validate().isEmpty)
        #expect(!PaymentSessionOptions(input: "speech").validate().isEmpty)
    }

    @Test func aChargeWithoutAConfirmationCodeIsNotCalledASavedCard() {
        let charged = run(Sample.cardSession(), [.callbackReceived(Sample.callback(["Result": "success"]), at: date)])
        #expect(
            charged.nextStep.instruction.contains("The payment went through")
                && !charged.nextStep.instruction.contains("saved"))
        let tokenized = run(
            Sample.cardSession(PaymentSessionOptions()),
            [.callbackReceived(Sample.callback(["Result": "success", "PaymentToken": "t"]), at: date)])
        #expect(tokenized.nextStep.instruction.contains("The card was saved"))
    }
}
