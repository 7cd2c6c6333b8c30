public import MCPCore
public import PaymentFlow
public import TwilioPayments
import Foundation
import Logging

/// Defaults for `startPaymentCapture` from the environment (`TOKEN_TYPE`, `CURRENCY`,
/// `PAYMENT_CONNECTOR`), applied when the agent does not say otherwise.
public struct PaymentDefaults: Sendable, Equatable {
    public var tokenType: TokenType?
    public var currency: String?
    public var paymentConnector: String?

    public init(tokenType: TokenType? = nil, currency: String? = nil, paymentConnector: String? = nil) {
        self.tokenType = tokenType
        self.currency = currency
        self.paymentConnector = paymentConnector
    }
}

/// A value that becomes available later (the coordinator, once the callback server and
/// tunnel are up), or a reason it never will. Tool calls wait for it within a bound.
public actor Eventually<Value: Sendable> {
    private var outcome: Result<Value, FlowError>?
    private var waiters: [UUID: CheckedContinuation<Result<Value, FlowError>, Never>] = [:]

    public init() {}

    public func resolve(_ value: Value) { settle(.success(value)) }

    public func fail(_ error: FlowError) { settle(.failure(error)) }

    private func settle(_ result: Result<Value, FlowError>) {
        guard outcome == nil else { return }
        outcome = result
        for waiter in waiters.values { waiter.resume(returning: result) }
        waiters.removeAll()
    }

    /// The value, waiting up to `timeout` for it.
    public func get(timeout: Duration) async throws(FlowError) -> Value {
        if let outcome { return try outcome.get() }
        let id = UUID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.timeOut(id)
        }
        defer { timer.cancel() }
        let result = await withCheckedContinuation { waiters[id] = $0 }
        return try result.get()
    }

    private func timeOut(_ id: UUID) {
        waiters.removeValue(forKey: id)?.resume(returning: .failure(
            .callbackUnavailable("the callback server is still starting; try again in a moment")))
    }
}

/// Binds the payment flow to an MCP server: the seed's tools (`startPaymentCapture`,
/// `captureCardNumber`, `captureSecurityCode`, `captureExpirationDate`,
/// `completePaymentCapture`) and the new ones (`capturePostalCode`,
/// `captureBankRoutingNumber`, `captureBankAccountNumber`, `cancelPaymentCapture`,
/// `getPaymentStatus`); the status resource `payment://{callSid}/{paymentSid}/status` with a
/// notification for every change; the guidance prompts; completions of active SIDs.
public final class PaymentsMCP: Sendable {
    public let server: MCPServer
    public let coordinator: Eventually<PaymentCoordinator>
    public let defaults: PaymentDefaults
    /// How long a tool waits for the coordinator before answering that the server is starting.
    public let readinessTimeout: Duration

    public init(server: MCPServer, coordinator: Eventually<PaymentCoordinator>, defaults: PaymentDefaults = PaymentDefaults(),
                readinessTimeout: Duration = .seconds(20)) {
        self.server = server
        self.coordinator = coordinator
        self.defaults = defaults
        self.readinessTimeout = readinessTimeout
    }

    /// The MCP server of agent-payments, with its identity and instructions.
    public static func makeServer(version: String, options: MCPServer.Options = MCPServer.Options()) -> MCPServer {
        MCPServer(
            info: Implementation(name: "agent-payments", title: "Agent Payments (Twilio)", version: version,
                                 description: "Take card or bank payments on a live Twilio call without ever seeing the card."),
            instructions: """
                Takes a card or bank (ACH) payment on a live Twilio voice call while you never see the card: the caller types \
                on the keypad, Twilio captures and tokenizes the digits, and you only ever see masked values. Start with the \
                StartCapture prompt, then startPaymentCapture with the call SID. Every tool result carries the session's \
                status and a nextStep telling you which tool to call and which prompt applies. Watch progress through the \
                resource payment://{callSid}/{paymentSid}/status (subscribe for updates) or getPaymentStatus with \
                waitSeconds. Never ask the caller to say card digits aloud.
                """,
            options: options
        )
    }

    /// Registers the tools, the resource template, the prompts and the completion provider,
    /// and starts forwarding session changes as resource notifications.
    public func install() {
        for tool in tools() { server.register(tool) }
        server.register(statusTemplate())
        for prompt in FlowPrompt.allCases { server.register(makePrompt(prompt)) }
        server.setCompletionProvider { [self] request, _ in await complete(request) }
        Task { [self] in
            guard let coordinator = try? await coordinator.get(timeout: .seconds(3600)) else { return }
            var known: Set<PaymentSID> = []
            for await session in await coordinator.changes() {
                guard let sid = session.paymentSID else { continue }
                server.notifyResourceUpdated(uri: SessionJSON.uri(callSID: session.callSID, paymentSID: sid))
                if known.insert(sid).inserted || session.phase.isFinished { server.notifyResourcesListChanged() }
                if session.phase.isFinished { known.remove(sid) }
            }
        }
    }

    // MARK: Tools

    static let callSIDSchema: JSONValue = ["type": "string", "pattern": "^CA[0-9a-fA-F]{32}$",
                                           "description": "The Twilio Call SID of the caller's call (the PSTN leg that carries the keypad tones)."]
    static let paymentSIDSchema: JSONValue = ["type": "string", "pattern": "^PK[0-9a-fA-F]{32}$",
                                              "description": "The Payment SID that startPaymentCapture returned."]

    private func tools() -> [Tool] {
        var tools: [Tool] = [startTool()]
        for item in PaymentItem.allCases { tools.append(captureTool(item)) }
        tools.append(sessionTool(.completePaymentCapture, title: "Complete the payment",
                                 description: "Submits the captured details: charges the amount, or saves the card or account as a token. Refused, naming what is missing, until every required item is captured.",
                                 annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true)) { (coordinator, sid, call) async throws(FlowError) -> PaymentSession in
            try await coordinator.complete(paymentSID: sid, callSID: call)
        })
        tools.append(sessionTool(.cancelPaymentCapture, title: "Cancel the payment session",
                                 description: "Cancels the payment session at any point before it ends. Final: to try again, start a new session.",
                                 annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true)) { (coordinator, sid, call) async throws(FlowError) -> PaymentSession in
            try await coordinator.cancel(paymentSID: sid, callSID: call)
        })
        tools.append(statusTool())
        return tools
    }

    private static let logger = Logger(label: "agent-payments.tools")

    private func result(_ session: PaymentSession, prefix: String? = nil) -> ToolResult {
        Self.logger.info("payment tool result", metadata: [
            "call.sid": "\(session.callSID)", "payment.sid": "\(session.paymentSID?.rawValue ?? "-")",
            "payment.phase": "\(session.phase.name)", "payment.version": "\(session.version)",
            "next.tool": "\(session.nextStep.tool?.rawValue ?? "-")",
        ])
        let status = SessionJSON.status(session)
        var text = prefix.map { $0 + "\n\n" } ?? ""
        text += "Next step: \(session.nextStep.instruction)\n\nStatus: \(status.serialized())"
        return ToolResult(content: [.text(text)], structuredContent: status)
    }

    private func failure(_ error: FlowError) -> ToolError {
        Self.logger.warning("tool refused: \(error)")
        var detail: [String: JSONValue] = ["message": .string(error.description)]
        if case .twilio(let twilio) = error, case .api(let api) = twilio {
            detail["twilioCode"] = api.code.map { .integer(Int64($0)) }
            detail["meaning"] = api.explanation.map(JSONValue.string)
            detail["whatToDo"] = api.remedy.map(JSONValue.string)
        }
        return ToolError(error.description, structuredContent: ["error": .object(detail)])
    }

    private func flow() async throws(ToolError) -> PaymentCoordinator {
        do {
            return try await coordinator.get(timeout: readinessTimeout)
        } catch {
            throw failure(error)
        }
    }

    private func startTool() -> Tool {
        Tool(
            name: FlowTool.startPaymentCapture.rawValue, title: "Start a payment",
            description: "Starts a secure payment session on a live call. Without chargeAmount the card (or bank account) is tokenized for later use; with it, the amount is charged at completion. Returns the session status and the next step.",
            inputSchema: [
                "type": "object",
                "properties": [
                    "callSid": Self.callSIDSchema,
                    "chargeAmount": ["type": ["number", "string"], "description": "Amount to charge, e.g. 9.99; omit to tokenize only."],
                    "currency": ["type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code, e.g. USD (default from CURRENCY)."],
                    "description": ["type": "string", "maxLength": 255],
                    "paymentMethod": ["type": "string", "enum": ["credit-card", "ach-debit"]],
                    "tokenType": ["type": "string", "enum": ["one-time", "reusable", "payment-method"]],
                    "paymentConnector": ["type": "string", "minLength": 1],
                    "securityCode": ["type": "boolean", "description": "Ask for the security code (default true)."],
                    "postalCode": ["type": "boolean", "description": "Ask for the billing postal code (default true)."],
                    "validCardTypes": ["type": "array", "items": ["type": "string", "enum": .array(CardType.allCases.map { .string($0.rawValue) })], "minItems": 1],
                    "timeout": ["type": "integer", "minimum": 1, "maximum": 600, "description": "Seconds of keypad silence allowed."],
                    "bankAccountType": ["type": "string", "enum": ["consumer-checking", "consumer-savings", "commercial-checking"]],
                    "confirmation": ["type": "boolean", "description": "Have the caller confirm the last four digits before submitting."],
                    "requireMatchingInputs": ["type": "array", "items": ["type": "string", "enum": .array(MatchableInput.allCases.map { .string($0.rawValue) })]],
                ],
                "required": ["callSid"],
                "additionalProperties": false,
            ],
            outputSchema: SessionJSON.schema,
            annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true)
        ) { [self] call in
            let arguments = call.arguments
            let callSID = CallSID(validated: arguments["callSid"]!.stringValue!)
            var options = PaymentSessionOptions()
            if let amount = arguments["chargeAmount"] {
                options.chargeAmount = amount.stringValue ?? amount.doubleValue.map { String(format: "%.2f", $0) }
            }
            options.currency = arguments["currency"]?.stringValue?.uppercased() ?? defaults.currency
            options.description = arguments["description"]?.stringValue
            options.paymentMethod = arguments["paymentMethod"]?.stringValue.flatMap(PaymentMethod.init(rawValue:))
            options.tokenType = arguments["tokenType"]?.stringValue.flatMap(TokenType.init(rawValue:)) ?? defaults.tokenType
            options.paymentConnector = arguments["paymentConnector"]?.stringValue ?? defaults.paymentConnector
            options.securityCode = arguments["securityCode"]?.boolValue
            options.postalCode = arguments["postalCode"]?.boolValue
            options.validCardTypes = arguments["validCardTypes"]?.arrayValue?.compactMap { $0.stringValue.flatMap(CardType.init(rawValue:)) }
            options.timeout = arguments["timeout"]?.intValue
            options.bankAccountType = arguments["bankAccountType"]?.stringValue.flatMap(BankAccountType.init(rawValue:))
            options.confirmation = arguments["confirmation"]?.boolValue
            options.requireMatchingInputs = arguments["requireMatchingInputs"]?.arrayValue?.compactMap { $0.stringValue.flatMap(MatchableInput.init(rawValue:)) }
            if options.paymentMethod == .achDebit, options.tokenType == .paymentMethod, arguments["tokenType"] == nil { options.tokenType = nil }
            let coordinator = try await flow()
            do {
                let session = try await coordinator.start(callSID: callSID, options: options)
                return result(session, prefix: "Payment session \(session.paymentSID?.rawValue ?? "?") started on call \(callSID).")
            } catch let error as FlowError {
                throw failure(error)
            }
        }
    }

    private func captureTool(_ item: PaymentItem) -> Tool {
        let tool = FlowTool.capture(item)
        var properties: [String: JSONValue] = ["callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema]
        properties["captureType"] = ["type": "string", "const": .string(item.rawValue),
                                     "description": .string("Optional; kept for compatibility. Must be \(item.rawValue) if given.")]
        return Tool(
            name: tool.rawValue, title: "Capture the \(item.spokenName)",
            description: "Asks Twilio to collect the \(item.spokenName) from the caller's keypad. Tell the caller what to type first; progress arrives masked in the status. Can be called again to re-capture after an error.",
            inputSchema: ["type": "object", "properties": .object(properties), "required": ["callSid", "paymentSid"], "additionalProperties": false],
            outputSchema: SessionJSON.schema,
            annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true)
        ) { [self] call in
            let sid = PaymentSID(validated: call.arguments["paymentSid"]!.stringValue!)
            let callSID = CallSID(validated: call.arguments["callSid"]!.stringValue!)
            let coordinator = try await flow()
            do {
                let session = try await coordinator.capture(item, paymentSID: sid, callSID: callSID)
                return result(session, prefix: "Capturing the \(item.spokenName).")
            } catch let error as FlowError {
                throw failure(error)
            }
        }
    }

    private func sessionTool(_ tool: FlowTool, title: String, description: String, annotations: ToolAnnotations,
                             _ action: @escaping @Sendable (PaymentCoordinator, PaymentSID, CallSID) async throws(FlowError) -> PaymentSession) -> Tool {
        Tool(
            name: tool.rawValue, title: title, description: description,
            inputSchema: ["type": "object", "properties": ["callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema],
                          "required": ["callSid", "paymentSid"], "additionalProperties": false],
            outputSchema: SessionJSON.schema, annotations: annotations
        ) { [self] call in
            let sid = PaymentSID(validated: call.arguments["paymentSid"]!.stringValue!)
            let callSID = CallSID(validated: call.arguments["callSid"]!.stringValue!)
            let coordinator = try await flow()
            do {
                return result(try await action(coordinator, sid, callSID))
            } catch let error as FlowError {
                throw failure(error)
            }
        }
    }

    private func statusTool() -> Tool {
        Tool(
            name: FlowTool.getPaymentStatus.rawValue, title: "Get the payment status",
            description: "Returns the session's masked status and next step. With waitSeconds, waits up to that long and returns as soon as the session changes (for clients that cannot subscribe to the status resource).",
            inputSchema: ["type": "object", "properties": [
                "callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema,
                "waitSeconds": ["type": "number", "minimum": 0, "maximum": 60],
                "afterVersion": ["type": "integer", "minimum": 0, "description": "Wait for a version newer than this (default: the current one)."],
            ], "required": ["paymentSid"], "additionalProperties": false],
            outputSchema: SessionJSON.schema,
            annotations: ToolAnnotations(readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false)
        ) { [self] call in
            let sid = PaymentSID(validated: call.arguments["paymentSid"]!.stringValue!)
            let coordinator = try await flow()
            guard var session = await coordinator.session(sid) else { throw failure(.unknownSession(sid)) }
            if let callText = call.arguments["callSid"]?.stringValue, callText != session.callSID.rawValue {
                throw failure(.wrongCall(paymentSID: sid, callSID: CallSID(validated: callText)))
            }
            if let wait = call.arguments["waitSeconds"]?.doubleValue, wait > 0 {
                let after = call.arguments["afterVersion"]?.intValue.map(UInt64.init) ?? session.version
                session = await coordinator.waitForChange(sid, afterVersion: after, timeout: .milliseconds(Int(wait * 1000))) ?? session
            }
            return result(session)
        }
    }

    // MARK: Resource

    private func statusTemplate() -> ResourceTemplate {
        ResourceTemplate(
            try! URITemplate("payment://{callSid}/{paymentSid}/status"), name: "payment-status", title: "Payment session status",
            description: "Live, masked status of one payment session, with the next step. Subscribe to be told of every change.",
            mimeType: "application/json",
            list: { [self] in
                guard let coordinator = try? await coordinator.get(timeout: .zero) else { return [] }
                return await coordinator.activeSessions().compactMap { session in
                    guard let sid = session.paymentSID else { return nil }
                    return ResourceDescriptor(uri: SessionJSON.uri(callSID: session.callSID, paymentSID: sid), name: "\(session.callSID)/\(sid)",
                                              title: "Payment \(sid) (\(session.phase.name))", mimeType: "application/json")
                }
            }
        ) { [self] variables, uri, _ in
            guard let sid = variables["paymentSid"].flatMap(PaymentSID.init), let callSID = variables["callSid"].flatMap(CallSID.init),
                  let coordinator = try? await coordinator.get(timeout: readinessTimeout),
                  let session = await coordinator.session(sid), session.callSID == callSID else { return nil }
            return [ResourceContents(uri: uri, mimeType: "application/json", text: SessionJSON.status(session).serialized())]
        }
    }

    // MARK: Prompts

    private func makePrompt(_ prompt: FlowPrompt) -> Prompt {
        let descriptions: [FlowPrompt: String] = [
            .startCapture: "How to open the payment with the caller and start the session.",
            .cardNumber: "Guiding the caller to type the card number.", .securityCode: "Guiding the caller to type the security code.",
            .expirationDate: "Guiding the caller to type the expiration date.", .postalCode: "Guiding the caller to type the billing postal code.",
            .bankAccount: "Guiding the caller through the bank routing and account numbers (ACH).",
            .finishCapture: "Confirming everything is captured and completing the payment.",
            .completion: "What to say once the payment has gone through.", .error: "Explaining what went wrong and how to recover.",
        ]
        return Prompt(
            name: prompt.rawValue, title: prompt.rawValue, description: descriptions[prompt],
            arguments: [PromptArgument(name: "callSid", description: "The call's SID", required: prompt == .startCapture),
                        PromptArgument(name: "paymentSid", description: "The payment session's SID, to tailor the guidance to its state")]
        ) { [self] arguments, _ in
            var session: PaymentSession?
            if let coordinator = try? await coordinator.get(timeout: .zero) {
                if let sid = arguments["paymentSid"].flatMap(PaymentSID.init) {
                    session = await coordinator.session(sid)
                } else if let call = arguments["callSid"].flatMap(CallSID.init) {
                    session = await coordinator.sessions(onCall: call).first
                }
            }
            let text = PromptLibrary.text(prompt, session: session)
            return PromptResult(description: descriptions[prompt], messages: [PromptMessage(role: .user, text: text)])
        }
    }

    // MARK: Completion

    private func complete(_ request: CompletionRequest) async -> Completion {
        guard let coordinator = try? await coordinator.get(timeout: .zero) else { return Completion(values: []) }
        let sessions = await coordinator.activeSessions()
        let values: [String]
        switch request.argumentName {
        case "callSid":
            values = Array(Set(sessions.map(\.callSID.rawValue))).sorted()
        case "paymentSid":
            let call = request.contextArguments["callSid"]
            values = sessions.filter { call == nil || $0.callSID.rawValue == call }.compactMap { $0.paymentSID?.rawValue }.sorted()
        default:
            values = []
        }
        return Completion(values: values.filter { $0.hasPrefix(request.value) })
    }
}
