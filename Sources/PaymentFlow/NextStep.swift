public import TwilioPayments
/// What the agent is helping the caller with now: the subject of the guidance that applies.
/// Its raw value is its name as a prompt (`StartCapture`, `CardNumber`, …: the names of the
/// server this one replaces); PaymentsMCP registers one MCP prompt per topic under that name.
public enum GuidanceTopic: String, Sendable, CaseIterable {
    case startCapture = "StartCapture"
    case cardNumber = "CardNumber"
    case securityCode = "SecurityCode"
    case expirationDate = "ExpirationDate"
    case postalCode = "PostalCode"
    case bankAccount = "BankAccount"
    case finishCapture = "FinishCapture"
    case completion = "Completion"
    case error = "Error"

    /// The topic that guides capturing `item`.
    public static func capture(_ item: PaymentItem) -> GuidanceTopic {
        switch item.base {
        case .cardNumber: return .cardNumber
        case .securityCode: return .securityCode
        case .expirationDate: return .expirationDate
        case .postalCode: return .postalCode
        default: return .bankAccount
        }
    }
}

/// What to do next, as a value a host can switch on.
public enum NextAction: Sendable, Equatable {
    /// Twilio is creating the session: wait for it.
    case waitForStart
    /// The caller is typing `item`: wait for the status to change.
    case waitForCaller(PaymentItem)
    /// Ask the caller for `item` and request its capture (again, after an error).
    case capture(PaymentItem)
    /// Everything is captured: complete the payment.
    case complete
    /// Completion was requested: wait for the result.
    case waitForResult
    /// Cancellation was requested: wait for it to be confirmed.
    case waitForCancellation
    /// The payment went through: tell the caller; nothing more to request.
    case tellCaller
    /// The session ended without a payment: if the caller still wants to pay, start a new one.
    case startOver
    /// The call is over: nothing can be done on it.
    case callOver
}

/// What the agent should do next, decided by the flow from the session's state alone: an
/// action, the guidance topic that applies, and one host-neutral sentence (it names no tool of
/// any protocol; a host adds its own words for how to act).
public struct NextStep: Sendable, Equatable {
    public var action: NextAction
    /// The guidance that applies now.
    public var topic: GuidanceTopic?
    /// One sentence for the agent.
    public var instruction: String

    public init(_ action: NextAction, topic: GuidanceTopic?, instruction: String) {
        self.action = action
        self.topic = topic
        self.instruction = instruction
    }

    /// Whether the agent should wait for the caller (or Twilio) before acting.
    public var waitForCaller: Bool {
        switch action {
        case .waitForStart, .waitForCaller, .waitForResult, .waitForCancellation: return true
        default: return false
        }
    }

    /// The second (confirming) entry to capture, when the next capture is one.
    public var captureType: PaymentItem? {
        if case .capture(let item) = action, item.isMatcher { return item }
        return nil
    }
}

extension PaymentSession {
    /// The next step, computed from the state alone.
    public var nextStep: NextStep {
        switch phase {
        case .starting:
            return NextStep(
                .waitForStart, topic: .startCapture,
                instruction: "The payment session is starting; wait a moment for its status to change.")
        case .active(let current):
            if let current, state(current).isInProgress {
                return NextStep(
                    .waitForCaller(current), topic: .capture(current),
                    instruction:
                        "The caller is typing the \(current.spokenName) on the keypad; wait for them to finish (the status changes as they type)."
                )
            }
            let missing = missingItems
            if let failed = missing.first(where: { if case .failed = state($0) { true } else { false } }),
                case .failed(let error) = state(failed)
            {
                // After a failed confirmation Twilio may want the first entry again; follow its `Required`.
                let retry = error == .inputMatchingFailed && missing.contains(failed.base) ? failed.base : failed
                return NextStep(
                    .capture(retry), topic: .error,
                    instruction:
                        "The \(failed.spokenName) was not accepted (\(ErrorGuidance.explanation(error))). \(ErrorGuidance.remedy(error, item: failed)) Then capture \(retry == failed ? "it" : "the \(retry.spokenName)") again."
                )
            }
            if let item = missing.first {
                return NextStep(
                    .capture(item), topic: .capture(item),
                    instruction:
                        "Ask the caller to type the \(item.spokenName) on the keypad, then request its capture.")
            }
            let saved = configuration.paymentMethod == .achDebit ? "save the bank account" : "save the card"
            return NextStep(
                .complete, topic: .finishCapture,
                instruction:
                    "Everything required has been captured; confirm with the caller that they are ready, then complete the payment to \(configuration.isCharge ? "charge it" : saved)."
            )
        case .completing:
            return NextStep(
                .waitForResult, topic: .finishCapture,
                instruction:
                    "The payment is being processed; tell the caller it will take a moment and wait for the result.")
        case .cancelling:
            return NextStep(
                .waitForCancellation, topic: nil,
                instruction: "The payment session is being cancelled; wait for the confirmation.")
        case .completed(let outcome):
            let what: String
            if configuration.isCharge {
                what =
                    "The payment went through" + (outcome.confirmationCode.map { " (confirmation code \($0))" } ?? "")
            } else {
                what =
                    (configuration.paymentMethod == .achDebit ? "The bank account was saved" : "The card was saved")
                    + " for later payments"
            }
            return NextStep(
                .tellCaller, topic: .completion,
                instruction: "\(what); confirm it to the caller and continue the conversation.")
        case .cancelled(let reason):
            return NextStep(
                .startOver, topic: .startCapture,
                instruction:
                    "The payment session was cancelled (\(reason)); if the caller still wants to pay, start a new payment session."
            )
        case .failed(let failure):
            return NextStep(
                .startOver, topic: .error,
                instruction:
                    "The payment did not go through: \(failure.reason). Explain this to the caller and, if they want to try again, start a new payment session."
            )
        case .callEnded(let failure):
            return NextStep(
                .callOver, topic: .error,
                instruction:
                    "The call has ended (\(failure.reason)), so the payment cannot continue on it. Nothing was charged. If the caller calls back, start a new session on the new call."
            )
        }
    }
}
