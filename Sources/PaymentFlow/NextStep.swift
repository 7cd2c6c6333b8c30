/// The tools of the payment server, by their MCP names (the seed's camelCase names, kept so
/// that users of the TypeScript server can switch).
public enum FlowTool: String, Sendable, CaseIterable {
    case startPaymentCapture, captureCardNumber, captureSecurityCode, captureExpirationDate, capturePostalCode
    case captureBankRoutingNumber, captureBankAccountNumber, completePaymentCapture, cancelPaymentCapture, getPaymentStatus

    /// The tool that captures `item` (a matcher is captured by its item's tool, with
    /// `captureType` naming the matcher).
    public static func capture(_ item: PaymentItem) -> FlowTool {
        switch item.base {
        case .cardNumber: return .captureCardNumber
        case .securityCode: return .captureSecurityCode
        case .expirationDate: return .captureExpirationDate
        case .postalCode: return .capturePostalCode
        case .bankRoutingNumber: return .captureBankRoutingNumber
        default: return .captureBankAccountNumber
        }
    }
}

/// The prompts of the payment server, by their MCP names.
public enum FlowPrompt: String, Sendable, CaseIterable {
    case startCapture = "StartCapture"
    case cardNumber = "CardNumber"
    case securityCode = "SecurityCode"
    case expirationDate = "ExpirationDate"
    case postalCode = "PostalCode"
    case bankAccount = "BankAccount"
    case finishCapture = "FinishCapture"
    case completion = "Completion"
    case error = "Error"

    /// The prompt that guides capturing `item`.
    public static func capture(_ item: PaymentItem) -> FlowPrompt {
        switch item.base {
        case .cardNumber: return .cardNumber
        case .securityCode: return .securityCode
        case .expirationDate: return .expirationDate
        case .postalCode: return .postalCode
        default: return .bankAccount
        }
    }
}

/// What the agent should do next, decided by the server from the session's state.
public struct NextStep: Sendable, Equatable {
    /// The tool to call next, if any.
    public var tool: FlowTool?
    /// The prompt with guidance for this moment.
    public var prompt: FlowPrompt?
    /// One sentence for the agent.
    public var instruction: String
    /// Whether the agent should wait for the caller (and the status resource) before acting.
    public var waitForCaller: Bool
    /// The item the tool is to capture, when it is a second (confirming) entry: the capture
    /// tool's `captureType` argument.
    public var captureType: PaymentItem?

    public init(tool: FlowTool?, prompt: FlowPrompt?, instruction: String, waitForCaller: Bool = false, captureType: PaymentItem? = nil) {
        self.tool = tool
        self.prompt = prompt
        self.instruction = instruction
        self.waitForCaller = waitForCaller
        self.captureType = captureType
    }

    /// The next step to capture `item`, with `captureType` set for a matcher.
    static func capture(_ item: PaymentItem, prompt: FlowPrompt, instruction: String) -> NextStep {
        NextStep(tool: .capture(item), prompt: prompt, instruction: instruction, captureType: item.isMatcher ? item : nil)
    }

    /// How to call the tool for `item`: its name, plus the `captureType` argument for a matcher.
    static func call(_ item: PaymentItem) -> String {
        FlowTool.capture(item).rawValue + (item.isMatcher ? " with captureType \(item.rawValue)" : "")
    }
}

extension PaymentSession {
    /// The next step, computed from the state alone.
    public var nextStep: NextStep {
        switch phase {
        case .starting:
            return NextStep(tool: .getPaymentStatus, prompt: .startCapture,
                            instruction: "The payment session is starting; wait a moment, then check its status with getPaymentStatus.",
                            waitForCaller: true)
        case .active(let current):
            if let current, state(current).isInProgress {
                return NextStep(tool: .getPaymentStatus, prompt: .capture(current),
                                instruction: "The caller is typing the \(current.spokenName) on the keypad; wait for them to finish (getPaymentStatus with waitSeconds returns as soon as it changes).",
                                waitForCaller: true)
            }
            let missing = missingItems
            if let failed = missing.first(where: { if case .failed = state($0) { true } else { false } }),
               case .failed(let error) = state(failed) {
                // After a failed confirmation Twilio may want the first entry again; follow its `Required`.
                let retry = error == .inputMatchingFailed && missing.contains(failed.base) ? failed.base : failed
                return .capture(retry, prompt: .error,
                                instruction: "The \(failed.spokenName) was not accepted (\(ErrorGuidance.explanation(error))). \(ErrorGuidance.remedy(error, item: failed)) Then call \(NextStep.call(retry)) to capture \(retry == failed ? "it" : "the \(retry.spokenName)") again.")
            }
            if let item = missing.first {
                return .capture(item, prompt: .capture(item),
                                instruction: "Ask the caller to type the \(item.spokenName) on the keypad, then call \(NextStep.call(item)).")
            }
            let saved = configuration.paymentMethod == .achDebit ? "save the bank account" : "save the card"
            return NextStep(tool: .completePaymentCapture, prompt: .finishCapture,
                            instruction: "Everything required has been captured; confirm with the caller that they are ready, then call completePaymentCapture to \(configuration.isCharge ? "charge the payment" : saved).")
        case .completing:
            return NextStep(tool: .getPaymentStatus, prompt: .finishCapture,
                            instruction: "The payment is being processed; tell the caller it will take a moment and wait for the result with getPaymentStatus.",
                            waitForCaller: true)
        case .cancelling:
            return NextStep(tool: .getPaymentStatus, prompt: nil,
                            instruction: "The payment session is being cancelled; wait for the confirmation.", waitForCaller: true)
        case .completed(let outcome):
            let what: String
            if configuration.isCharge {
                what = "The payment went through" + (outcome.confirmationCode.map { " (confirmation code \($0))" } ?? "")
            } else {
                what = (configuration.paymentMethod == .achDebit ? "The bank account was saved" : "The card was saved") + " for later payments"
            }
            return NextStep(tool: nil, prompt: .completion,
                            instruction: "\(what); confirm it to the caller and continue the conversation.")
        case .cancelled(let reason):
            return NextStep(tool: .startPaymentCapture, prompt: .startCapture,
                            instruction: "The payment session was cancelled (\(reason)); if the caller still wants to pay, start a new one with startPaymentCapture.")
        case .failed(let failure):
            return NextStep(tool: .startPaymentCapture, prompt: .error,
                            instruction: "The payment did not go through: \(failure.reason). Explain this to the caller and, if they want to try again, start a new session with startPaymentCapture.")
        case .callEnded(let failure):
            return NextStep(tool: nil, prompt: .error,
                            instruction: "The call has ended (\(failure.reason)), so the payment cannot continue on it. Nothing was charged. If the caller calls back, start a new session on the new call.")
        }
    }
}
