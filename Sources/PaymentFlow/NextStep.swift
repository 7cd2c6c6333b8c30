/// The tools of the payment server, by their MCP names (the seed's camelCase names, kept so
/// that users of the TypeScript server can switch).
public enum FlowTool: String, Sendable, CaseIterable {
    case startPaymentCapture, captureCardNumber, captureSecurityCode, captureExpirationDate, capturePostalCode
    case captureBankRoutingNumber, captureBankAccountNumber, completePaymentCapture, cancelPaymentCapture, getPaymentStatus

    /// The tool that captures `item`.
    public static func capture(_ item: PaymentItem) -> FlowTool {
        switch item {
        case .cardNumber: return .captureCardNumber
        case .securityCode: return .captureSecurityCode
        case .expirationDate: return .captureExpirationDate
        case .postalCode: return .capturePostalCode
        case .bankRoutingNumber: return .captureBankRoutingNumber
        case .bankAccountNumber: return .captureBankAccountNumber
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
        switch item {
        case .cardNumber: return .cardNumber
        case .securityCode: return .securityCode
        case .expirationDate: return .expirationDate
        case .postalCode: return .postalCode
        case .bankRoutingNumber, .bankAccountNumber: return .bankAccount
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

    public init(tool: FlowTool?, prompt: FlowPrompt?, instruction: String, waitForCaller: Bool = false) {
        self.tool = tool
        self.prompt = prompt
        self.instruction = instruction
        self.waitForCaller = waitForCaller
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
            if let failed = missingItems.first(where: { if case .failed = state($0) { true } else { false } }),
               case .failed(let error) = state(failed) {
                let tool = FlowTool.capture(failed)
                return NextStep(tool: tool, prompt: .error,
                                instruction: "The \(failed.spokenName) was not accepted (\(ErrorGuidance.explanation(error))). \(ErrorGuidance.remedy(error, item: failed)) Then call \(tool.rawValue) to capture it again.")
            }
            if let item = missingItems.first {
                let tool = FlowTool.capture(item)
                return NextStep(tool: tool, prompt: .capture(item),
                                instruction: "Ask the caller to type the \(item.spokenName) on the keypad, then call \(tool.rawValue).")
            }
            return NextStep(tool: .completePaymentCapture, prompt: .finishCapture,
                            instruction: "Everything required has been captured; confirm with the caller that they are ready, then call completePaymentCapture to \(configuration.isCharge ? "charge the payment" : "save the card").")
        case .completing:
            return NextStep(tool: .getPaymentStatus, prompt: .finishCapture,
                            instruction: "The payment is being processed; tell the caller it will take a moment and wait for the result with getPaymentStatus.",
                            waitForCaller: true)
        case .cancelling:
            return NextStep(tool: .getPaymentStatus, prompt: nil,
                            instruction: "The payment session is being cancelled; wait for the confirmation.", waitForCaller: true)
        case .completed(let outcome):
            let what = outcome.confirmationCode != nil ? "The payment succeeded" : "The card was saved successfully"
            return NextStep(tool: nil, prompt: .completion,
                            instruction: "\(what); confirm it to the caller\(outcome.confirmationCode.map { " (confirmation code \($0))" } ?? "") and continue the conversation.")
        case .cancelled(let reason):
            return NextStep(tool: .startPaymentCapture, prompt: .startCapture,
                            instruction: "The payment session was cancelled (\(reason)); if the caller still wants to pay, start a new one with startPaymentCapture.")
        case .failed(let failure):
            return NextStep(tool: .startPaymentCapture, prompt: .error,
                            instruction: "The payment did not go through: \(failure.reason). Explain this to the caller and, if they want to try again, start a new session with startPaymentCapture.")
        }
    }
}
