import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

/// Whole payments, event by event, as Twilio reports them.
@Suite struct PaymentScenarioTests {
    let date = Sample.date

    /// The recorded callbacks of a successful card payment, one window per item.
    static func cardWindows(
        result: [String: String] = ["Result": "success", "PaymentConfirmationCode": "ch_a9dc6297"]
    ) -> [(PaymentEvent?, [PaymentStatusCallback])] {
        [
            (
                .captureRequested(.cardNumber, at: Sample.date),
                Sample.typing(
                    .cardNumber, field: "PaymentCardNumber", masked: ["x", "xx", "xxxx", "xxxxxxxxxxxx1111"],
                    cardType: "visa",
                    required: "security-code,expiration-date,postal-code")
            ),
            (
                .captureRequested(.securityCode, at: Sample.date),
                Sample.typing(
                    .securityCode, field: "SecurityCode", masked: ["x", "xx", "xxx"],
                    required: "expiration-date,postal-code")
            ),
            (
                .captureRequested(.expirationDate, at: Sample.date),
                Sample.typing(
                    .expirationDate, field: "ExpirationDate", masked: ["1", "12", "1230"], required: "postal-code")
            ),
            (
                .captureRequested(.postalCode, at: Sample.date),
                Sample.typing(.postalCode, field: "PaymentCardPostalCode", masked: ["9", "94105"], required: "")
            ),
            (.completeRequested(at: Sample.date), [Sample.callback(result)]),
        ]
    }

    static func play(
        _ windows: [(PaymentEvent?, [PaymentStatusCallback])], from session: PaymentSession = Sample.cardSession()
    ) -> PaymentSession {
        windows.reduce(session) { session, window in
            var next = session
            if let request = window.0 { next = PaymentReducer.reduce(next, request).session }
            return run(next, window.1.map { .callbackReceived($0, at: Sample.date) })
        }
    }

    @Test func happyPathCharge() {
        let session = Self.play(Self.cardWindows())
        #expect(session.phase == .completed(PaymentOutcome(result: .success, confirmationCode: "ch_a9dc6297")))
        #expect(session.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111" && session.cardType == "visa")
        #expect(session.maskedValue(.securityCode) == "xxx" && session.maskedValue(.expirationDate) == "1230")
        #expect(session.nextStep.topic == .completion && session.nextStep.action == .tellCaller)
    }

    @Test func happyPathTokenize() {
        let session = Self.play(
            Self.cardWindows(result: ["Result": "success", "PaymentToken": "tok_123", "ProfileId": "prof_9"]),
            from: Sample.cardSession(PaymentSessionOptions(tokenType: .reusable)))
        #expect(session.phase == .completed(PaymentOutcome(result: .success, token: "tok_123", profileID: "prof_9")))
        #expect(session.nextStep.instruction.contains("card was saved"))
    }

    @Test func nextStepsWalkTheAgentThroughEveryItem() {
        var session = Sample.cardSession()
        var actions: [NextAction] = [session.nextStep.action]
        for window in Self.cardWindows().dropLast() {
            session = Self.play([window], from: session)
            actions.append(session.nextStep.action)
        }
        #expect(
            actions == [
                .capture(.cardNumber), .capture(.securityCode), .capture(.expirationDate), .capture(.postalCode),
                .complete,
            ])
    }

    @Test func invalidCardThenReentryThenSuccess() {
        var windows = Self.cardWindows()
        windows.insert(
            (
                .captureRequested(.cardNumber, at: Sample.date),
                [
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx",
                    ]),
                    Sample.callback([
                        "Capture": "payment-card-number", "ErrorType": "invalid-card-number",
                        "Required": "payment-card-number,security-code,expiration-date,postal-code",
                    ]),
                ]
            ), at: 0)
        let afterError = Self.play(Array(windows.prefix(1)))
        #expect(afterError.nextStep.topic == .error && afterError.nextStep.action == .capture(.cardNumber))
        #expect(afterError.nextStep.instruction.contains("card number was not valid"))
        let session = Self.play(windows)
        #expect(session.phase.name == "completed")
        #expect(session.progress(.cardNumber).failedAttempts == 1 && session.progress(.cardNumber).requests == 2)
    }

    @Test func timeoutLeavesTheItemToRetry() {
        let session = Self.play([
            (
                .captureRequested(.cardNumber, at: Sample.date),
                [Sample.callback(["Capture": "payment-card-number", "ErrorType": "input-timeout"])]
            )
        ])
        #expect(session.state(.cardNumber) == .failed(.inputTimeout) && session.phase == .active(current: nil))
        #expect(session.nextStep.instruction.contains("did not press any key in time"))
    }

    @Test func hangUpMidCapture() {
        let session = Self.play([
            (
                .captureRequested(.cardNumber, at: Sample.date),
                [
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xx",
                    ]),
                    Sample.callback(["Result": "caller-hung-up"]),
                ]
            )
        ])
        guard case .callEnded(let failure) = session.phase else {
            Issue.record("\(session.phase)")
            return
        }
        #expect(failure.result == .callerHungUp && failure.reason == "the caller hung up")
        #expect(session.nextStep.action == .callOver && session.nextStep.instruction.contains("The call has ended"))
    }

    @Test func declineAtCompleteCarriesPaymentErrorAndCode() {
        let session = Self.play(
            Self.cardWindows(result: [
                "Result": "payment-connector-error", "PaymentError": "card_declined",
                "PayErrorCode": "64012", "ConnectorError": "Your card was declined.",
            ]))
        guard case .failed(let failure) = session.phase else {
            Issue.record("\(session.phase)")
            return
        }
        #expect(
            failure.payErrorCode == 64012 && failure.paymentError == "card_declined"
                && failure.connectorError == "Your card was declined.")
        #expect(failure.reason.contains("card_declined") && failure.reason.contains("rejected the card"))
        #expect(session.nextStep.action == .startOver && session.nextStep.instruction.contains("rejected the card"))
        #expect(TwilioErrorCatalog.entries[64012]?.remedy.contains("another card") == true)
    }

    @Test func cancelMidCapture() {
        var session = Self.play([
            (
                .captureRequested(.cardNumber, at: Sample.date),
                [
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxx",
                    ])
                ]
            )
        ])
        let transition = PaymentReducer.reduce(session, .cancelRequested(at: date))
        #expect(transition.effects == [.send(.cancel)])
        session = run(transition.session, [.cancelAccepted(at: date)])
        #expect(
            session.phase == .cancelled(reason: "cancelled by the agent") && session.state(.cardNumber) == .notRequested
        )
        session = run(
            session,
            [
                .callbackReceived(
                    Sample.callback([
                        "Capture": "payment-card-number", "PartialResult": "false",
                        "PaymentCardNumber": "xxxxxxxxxxxx1111",
                    ]), at: date)
            ])
        #expect(session.phase.name == "cancelled" && session.state(.cardNumber) == .notRequested)
    }

    @Test func achPayment() {
        var session = Sample.achSession()
        #expect(session.nextStep.action == .capture(.bankRoutingNumber) && session.nextStep.topic == .bankAccount)
        session = Self.play(
            [
                (
                    .captureRequested(.bankRoutingNumber, at: Sample.date),
                    Sample.typing(
                        .bankRoutingNumber, field: "BankRoutingNumber", masked: ["1", "121000358"],
                        required: "bank-account-number")
                ),
                (
                    .captureRequested(.bankAccountNumber, at: Sample.date),
                    Sample.typing(
                        .bankAccountNumber, field: "BankAccountNumber", masked: ["*", "123456789"], required: "")
                ),
                (
                    .completeRequested(at: Sample.date),
                    [Sample.callback(["Result": "success", "PaymentConfirmationCode": "ach_1"])]
                ),
            ], from: session)
        #expect(session.phase.name == "completed")
        #expect(session.maskedValue(.bankRoutingNumber) == "121000358")
        #expect(session.maskedValue(.bankAccountNumber) == "*****6789", "even a clear account number is masked")
        #expect(PaymentReducer.reduce(Sample.achSession(), .captureRequested(.cardNumber, at: date)).rejection != nil)
    }

    @Test func shuffledAndDuplicatedCallbacksEndInTheSameState() {
        let expected = Self.play(Self.cardWindows())
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<200 {
            var delivered: [PaymentStatusCallback] = []
            let windows = Self.cardWindows().map { request, callbacks -> (PaymentEvent?, [PaymentStatusCallback]) in
                var noisy = callbacks
                for callback in callbacks where Bool.random(using: &generator) { noisy.append(callback) }
                // Stale non-error callbacks from earlier windows arrive again.
                for _ in 0..<Int.random(in: 0...2, using: &generator) where !delivered.isEmpty {
                    noisy.append(delivered.randomElement(using: &generator)!)
                }
                noisy.shuffle(using: &generator)
                delivered += callbacks
                return (request, noisy)
            }
            let session = Self.play(windows)
            #expect(session.phase == expected.phase)
            #expect(session.missingItems == expected.missingItems)
            for item in PaymentItem.allCases { #expect(session.state(item) == expected.state(item)) }
        }
    }
}

/// A deterministic generator so randomized tests reproduce.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E3779B97F4A7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

/// Random event sequences: nothing crashes, versions only grow, a finished session stays
/// finished, and no full card number or security code digit is ever kept.
@Suite struct PaymentReducerPropertyTests {
    static let fields: [(String, [String])] = [
        ("Capture", PaymentItem.allCases.map(\.rawValue) + ["bogus"]),
        ("PartialResult", ["true", "false", ""]),
        ("ErrorType", PaymentErrorType.documented.map(\.rawValue) + ["", "weird"]),
        ("Required", ["", "payment-card-number", "security-code expiration-date", "postal-code,bank-account-number"]),
        ("PaymentCardNumber", ["4111111111111111", "xxxxxxxxxxxx1111", "41111111", "x"]),
        ("SecurityCode", ["123", "xxx", "1x3"]),
        ("BankAccountNumber", ["123456789", "*****6789"]),
        ("Result", PaymentResult.documented.map(\.rawValue) + ["", "other"]),
        ("PaymentCardType", ["visa", "amex"]),
    ]

    static func randomEvent(using generator: inout SeededGenerator) -> PaymentEvent {
        let item = PaymentItem.allCases.randomElement(using: &generator)!
        switch Int.random(in: 0..<14, using: &generator) {
        case 0: return .captureRequested(item, at: Sample.date)
        case 1: return .captureAccepted(item, at: Sample.date)
        case 2: return .completeRequested(at: Sample.date)
        case 3: return .completeAccepted(at: Sample.date)
        case 4: return .cancelRequested(at: Sample.date)
        case 5: return .cancelAccepted(at: Sample.date)
        case 6:
            return .requestFailed(
                [.capture(item), .complete, .cancel, .create].randomElement(using: &generator)!, reason: "boom",
                at: Sample.date)
        case 7: return .callEnded(at: Sample.date)
        default:
            var values: [String: String] = [:]
            for (name, options) in fields where Int.random(in: 0..<3, using: &generator) == 0 {
                values[name] = options.randomElement(using: &generator)!
            }
            if values["Result"] != nil, Int.random(in: 0..<4, using: &generator) != 0 { values["Result"] = nil }
            return .callbackReceived(Sample.callback(values), at: Sample.date)
        }
    }

    @Test func invariantsHoldOverRandomSequences() {
        var generator = SeededGenerator(seed: 7)
        var finishedRuns = 0
        for _ in 0..<2000 {
            var session = Bool.random(using: &generator) ? Sample.cardSession() : Sample.achSession()
            for _ in 0..<Int.random(in: 1...60, using: &generator) {
                let transition = PaymentReducer.reduce(session, Self.randomEvent(using: &generator))
                let next = transition.session
                #expect(next.version >= session.version)
                #expect(transition.changed == (next.version > session.version))
                if session.phase.isFinished { #expect(next.phase == session.phase) }
                for item in PaymentItem.allCases {
                    if let value = next.maskedValue(item) {
                        #expect(!Masking.exposes(value, for: item), "\(item): \(value)")
                    }
                }
                session = next
            }
            if session.phase.isFinished { finishedRuns += 1 }
        }
        #expect(finishedRuns > 100, "the random walk reaches the end states")
    }
}
