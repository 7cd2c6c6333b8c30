public import TwilioPayments
public import PaymentFlow
public import MCPCore

/// The tools of the payment server, by their MCP names (the seed's camelCase names, kept so
/// that users of the TypeScript server can switch).
public enum FlowTool: String, Sendable, CaseIterable {
    case startPaymentCapture, captureCardNumber, captureSecurityCode, captureExpirationDate, capturePostalCode
    case captureBankRoutingNumber, captureBankAccountNumber, completePaymentCapture, cancelPaymentCapture,
        getPaymentStatus

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

/// The flow's next step in this server's MCP terms: the tool to call, the prompt that
/// applies, the flow's sentence with how to act on it here, and, when it was built for a
/// session, the complete arguments of that call (an agent can call `tool` with `arguments` as
/// they are).
public struct MCPNextStep: Sendable, Equatable {
    public var tool: FlowTool?
    public var prompt: GuidanceTopic?
    public var instruction: String
    public var waitForCaller: Bool
    /// The capture tool's `captureType` argument, for a second entry.
    public var captureType: PaymentItem?
    /// The arguments of the next call (the SIDs, `captureType`, a `waitSeconds` that fits the
    /// server's longest wait, `waitFor`); empty when no session was given.
    public var arguments: [String: JSONValue]

    /// The next step of `step`; with `session`, the arguments of the call it names, with waits of
    /// `waitSeconds` (the server's longest).
    public init(
        _ step: NextStep, for session: PaymentSession? = nil,
        waitSeconds: Double = PaymentsMCP.defaultMaximumWaitSeconds
    ) {
        prompt = step.topic
        waitForCaller = step.waitForCaller
        captureType = step.captureType
        var arguments: [String: JSONValue] = [:]
        if let session {
            arguments["callSid"] = .string(session.callSID.rawValue)
            arguments["paymentSid"] = session.paymentSID.map { .string($0.rawValue) }
        }
        let wait = Self.spoken(waitSeconds)
        switch step.action {
        case .waitForStart, .waitForCaller, .waitForResult, .waitForCancellation:
            tool = .getPaymentStatus
            instruction =
                step.instruction
                + " Call getPaymentStatus with waitSeconds \(wait) and waitFor next-step (it returns once there is "
                + "something to do; call it again while the caller is still typing), or watch the status resource."
            if session != nil {
                arguments["waitSeconds"] = Self.number(waitSeconds)
                arguments["waitFor"] = "next-step"
            }
        case .capture(let item):
            let tool = FlowTool.capture(item)
            self.tool = tool
            let call = tool.rawValue + (item.isMatcher ? " with captureType \(item.rawValue)" : "")
            instruction =
                step.instruction + " Call \(call) (with waitSeconds \(wait) it also waits for the caller's entry)."
            if session != nil {
                if item.isMatcher { arguments["captureType"] = .string(item.rawValue) }
                arguments["waitSeconds"] = Self.number(waitSeconds)
            }
        case .complete:
            tool = .completePaymentCapture
            instruction =
                step.instruction
                + " Call completePaymentCapture (with waitSeconds \(wait) it also waits for the result)."
            if session != nil { arguments["waitSeconds"] = Self.number(waitSeconds) }
        case .startOver:
            tool = .startPaymentCapture
            instruction = step.instruction + " A new session starts with startPaymentCapture."
            arguments.removeValue(forKey: "paymentSid")
        case .tellCaller, .callOver:
            tool = nil
            instruction = step.instruction
            arguments = [:]
        }
        // Without a session, only what the step itself knows (the second entry's captureType).
        if session == nil { arguments = captureType.map { ["captureType": .string($0.rawValue)] } ?? [:] }
        self.arguments = arguments
    }

    /// A wait in seconds as a JSON number: an integer when whole.
    static func number(_ seconds: Double) -> JSONValue {
        seconds.rounded() == seconds ? .integer(Int64(seconds)) : .double(seconds)
    }

    /// A wait in seconds as words ("3", "2.5").
    static func spoken(_ seconds: Double) -> String {
        seconds.rounded() == seconds ? String(Int64(seconds)) : String(seconds)
    }

    /// The step as status JSON spells it.
    var json: JSONValue {
        .object(dropping: [
            "tool": tool.map { .string($0.rawValue) }, "prompt": prompt.map { .string($0.rawValue) },
            "instruction": .string(instruction), "waitForCaller": .bool(waitForCaller),
            "arguments": arguments.isEmpty ? nil : .object(arguments),
        ])
    }
}
