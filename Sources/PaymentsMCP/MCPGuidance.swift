public import PaymentFlow

/// The tools of the payment server, by their MCP names (the seed's camelCase names, kept so
/// that users of the TypeScript server can switch).
public enum FlowTool: String, Sendable, CaseIterable {
    case startPaymentCapture, captureCardNumber, captureSecurityCode, captureExpirationDate, capturePostalCode
    case captureBankRoutingNumber, captureBankAccountNumber, completePaymentCapture, cancelPaymentCapture, getPaymentStatus

    /// The tool that captures `item` (a second entry is captured by its item's tool, with
    /// `captureType` naming it).
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

    /// The prompt for a guidance topic of the flow.
    public init(_ topic: GuidanceTopic) {
        switch topic {
        case .startCapture: self = .startCapture
        case .cardNumber: self = .cardNumber
        case .securityCode: self = .securityCode
        case .expirationDate: self = .expirationDate
        case .postalCode: self = .postalCode
        case .bankAccount: self = .bankAccount
        case .finishCapture: self = .finishCapture
        case .completion: self = .completion
        case .error: self = .error
        }
    }
}

/// The flow's next step in this server's MCP terms: the tool to call, the prompt that
/// applies, and the flow's sentence with how to act on it here.
public struct MCPNextStep: Sendable, Equatable {
    public var tool: FlowTool?
    public var prompt: FlowPrompt?
    public var instruction: String
    public var waitForCaller: Bool
    /// The capture tool's `captureType` argument, for a second entry.
    public var captureType: PaymentItem?

    public init(_ step: NextStep) {
        prompt = step.topic.map(FlowPrompt.init)
        waitForCaller = step.waitForCaller
        captureType = step.captureType
        switch step.action {
        case .waitForStart, .waitForCaller, .waitForResult, .waitForCancellation:
            tool = .getPaymentStatus
            instruction = step.instruction + " Use getPaymentStatus with waitSeconds (it returns as soon as the session changes), or watch the status resource."
        case .capture(let item):
            let tool = FlowTool.capture(item)
            self.tool = tool
            let call = tool.rawValue + (item.isMatcher ? " with captureType \(item.rawValue)" : "")
            instruction = step.instruction + " Call \(call)."
        case .complete:
            tool = .completePaymentCapture
            instruction = step.instruction + " Call completePaymentCapture."
        case .startOver:
            tool = .startPaymentCapture
            instruction = step.instruction + " A new session starts with startPaymentCapture."
        case .tellCaller, .callOver:
            tool = nil
            instruction = step.instruction
        }
    }
}
