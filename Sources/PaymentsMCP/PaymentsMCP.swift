public import MCPCore
public import PaymentFlow
public import TwilioPayments
import Foundation
import Logging

/// Defaults for `startPaymentCapture` from the environment (`TOKEN_TYPE`, `CURRENCY`,
/// `PAYMENT_CONNECTOR`, `POSTAL_CODE`, `SECURITY_CODE`), applied when the agent does not say
/// otherwise.
public struct PaymentDefaults: Sendable, Equatable {
    public var tokenType: TokenType?
    public var currency: String?
    public var paymentConnector: String?
    /// Whether Twilio asks for the billing postal code. `false` unless configured, as the
    /// TypeScript server we replace always sent `PostalCode=false`.
    public var postalCode: Bool
    /// Whether Twilio asks for the security code (`true`, Twilio's own default).
    public var securityCode: Bool

    public init(tokenType: TokenType? = nil, currency: String? = nil, paymentConnector: String? = nil, postalCode: Bool = false,
                securityCode: Bool = true) {
        self.tokenType = tokenType
        self.currency = currency
        self.paymentConnector = paymentConnector
        self.postalCode = postalCode
        self.securityCode = securityCode
    }
}

/// Tool arguments read by type. MCPCore has checked them against the tool's input schema, so
/// a value of the wrong type is a refusal with a message, never a crash.
struct ToolArguments {
    let values: [String: JSONValue]

    init(_ values: [String: JSONValue]) { self.values = values }

    func string(_ name: String) -> String? { values[name]?.stringValue }
    func bool(_ name: String) -> Bool? { values[name]?.boolValue }
    func int(_ name: String) -> Int? { values[name]?.intValue }
    func double(_ name: String) -> Double? { values[name]?.doubleValue }
    func strings(_ name: String) -> [String]? { values[name]?.arrayValue?.compactMap(\.stringValue) }

    /// The argument `name` parsed by `parse`, or a refusal naming it.
    func required<T>(_ name: String, _ parse: (String) -> T?) throws(FlowError) -> T {
        guard let text = string(name), let value = parse(text) else { throw .invalidArgument("\(name) is missing or malformed") }
        return value
    }

    /// The optional argument `name` parsed by `parse`; a present but unparseable value is refused.
    func optional<T>(_ name: String, _ parse: (String) -> T?) throws(FlowError) -> T? {
        guard values[name] != nil else { return nil }
        return try required(name, parse)
    }

    /// A charge amount exactly as given: a string is kept verbatim; a JSON number becomes its
    /// shortest decimal text (`9.99`, `10`), never rounded to a fixed number of places.
    func amount(_ name: String) throws(FlowError) -> String? {
        switch values[name] {
        case nil, .null?: return nil
        case .string(let text)?: return text.trimmingCharacters(in: .whitespaces)
        case .integer(let value)?: return String(value)
        case .double(let value)?:
            guard value.isFinite else { throw .invalidArgument("\(name) must be a finite number") }
            let text = "\(value)"
            return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
        default: throw .invalidArgument("\(name) must be a number or a decimal string")
        }
    }

    /// A flat JSON object of scalars (Twilio's `Parameter`).
    func connectorParameters(_ name: String) throws(FlowError) -> [String: ConnectorParameter]? {
        guard let object = values[name]?.objectValue else { return nil }
        var parameters: [String: ConnectorParameter] = [:]
        for (key, value) in object {
            switch value {
            case .string(let text): parameters[key] = .string(text)
            case .bool(let flag): parameters[key] = .bool(flag)
            case .integer(let number): parameters[key] = .number(String(number))
            case .double(let number) where number.isFinite: parameters[key] = .number("\(number)")
            default: throw .invalidArgument("\(name).\(key) must be a string, number or boolean (Twilio's Parameter is a flat JSON object)")
            }
        }
        return parameters
    }
}

/// A value that becomes available later (the coordinator, once the callback server and
/// tunnel are up), or a reason it never will. Tool calls wait for it within a bound.
public actor Eventually<Value: Sendable> {
    private var outcome: Result<Value, FlowError>?
    private var waiters: [UUID: CheckedContinuation<Result<Value, FlowError>, Never>] = [:]

    public init() {}

    public func resolve(_ value: Value) { settle(.success(value)) }

    /// How many callers wait for the value now.
    public var waitingCount: Int { waiters.count }

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
    /// What every text the agent sees passes through (tool results, the status resource,
    /// prompts), as the logs do: Twilio's messages may echo what they were sent.
    public let redactor: Redactor

    public init(server: MCPServer, coordinator: Eventually<PaymentCoordinator>, defaults: PaymentDefaults = PaymentDefaults(),
                readinessTimeout: Duration = .seconds(20), redactor: Redactor = Redactor(secrets: [])) {
        self.server = server
        self.coordinator = coordinator
        self.defaults = defaults
        self.readinessTimeout = readinessTimeout
        self.redactor = redactor
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
        for item in PaymentItem.entries { tools.append(captureTool(item)) }
        tools.append(sessionTool(.completePaymentCapture, title: "Complete the payment",
                                 description: "Submits the captured details: charges the amount, or saves the card or account as a token. Refused, naming what is missing, until every item Twilio still requires is captured.",
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

    /// A successful tool result: the first content block is the JSON of the status (the same as
    /// `structuredContent`, parseable as the TypeScript server's results were), the second the
    /// guidance in words.
    private func result(_ session: PaymentSession, prefix: String? = nil) -> ToolResult {
        Self.logger.info("payment tool result", metadata: [
            "call.sid": "\(session.callSID)", "payment.sid": "\(session.paymentSID?.rawValue ?? "-")",
            "payment.phase": "\(session.phase.name)", "payment.version": "\(session.version)",
            "next.tool": "\(MCPNextStep(session.nextStep).tool?.rawValue ?? "-")",
        ])
        let status = redactor.redact(SessionJSON.status(session), keeping: SessionJSON.resultKeys)
        let guidance = redactor.redact((prefix.map { $0 + " " } ?? "") + "Next step: \(MCPNextStep(session.nextStep).instruction)")
        return ToolResult(content: [.text(status.serialized()), .text(guidance)], structuredContent: status)
    }

    /// A refusal: `isError`, no `structuredContent` (the tools' output schema describes a
    /// session); the first block is the JSON of the error, the second the message in words.
    private func failure(_ error: FlowError) -> ToolResult {
        Self.logger.warning("tool refused: \(error)")
        var detail: [String: JSONValue] = ["message": .string(redactor.redact(error.description))]
        if case .twilio(let twilio) = error, case .api(let api) = twilio {
            detail["twilioCode"] = api.code.map { .integer(Int64($0)) }
            detail["meaning"] = api.explanation.map(JSONValue.string)
            detail["whatToDo"] = api.remedy.map(JSONValue.string)
        }
        if case .callEnded = error { detail["callEnded"] = .bool(true) }
        detail["reason"] = .string(Self.reasonCode(error))
        if case .rejected(.itemsMissing(let missing)) = error { detail["missing"] = .array(missing.map { .string($0.rawValue) }) }
        let json = redactor.redact(JSONValue.object(["error": .object(detail)]))
        return ToolResult(content: [.text(json.serialized()), .text(redactor.redact(error.description))], isError: true)
    }

    /// A stable, machine-readable name for why a tool was refused.
    static func reasonCode(_ error: FlowError) -> String {
        switch error {
        case .rejected(let rejection):
            switch rejection {
            case .stillStarting: return "still-starting"
            case .completing: return "completing"
            case .cancelling: return "cancelling"
            case .finished: return "finished"
            case .notApplicable: return "not-applicable"
            case .outOfOrder: return "out-of-order"
            case .itemInProgress: return "item-in-progress"
            case .itemsMissing: return "items-missing"
            }
        case .invalidOptions: return "invalid-options"
        case .invalidArgument: return "invalid-argument"
        case .conflict: return "conflict"
        case .sessionGone: return "session-gone"
        case .sessionInProgress: return "session-in-progress"
        case .unknownSession: return "unknown-session"
        case .wrongCall: return "wrong-call"
        case .twilio: return "twilio-error"
        case .callbackUnavailable: return "callback-unavailable"
        case .callEnded: return "call-ended"
        }
    }

    /// Runs a tool body against the coordinator, turning every flow error into a refusal.
    private func withFlow(_ body: (PaymentCoordinator) async throws(FlowError) -> ToolResult) async -> ToolResult {
        do {
            let coordinator = try await coordinator.get(timeout: readinessTimeout)
            return try await body(coordinator)
        } catch {
            return failure(error)
        }
    }

    /// The options of `startPaymentCapture`, from its arguments and the configured defaults.
    func options(from arguments: ToolArguments) throws(FlowError) -> PaymentSessionOptions {
        var options = PaymentSessionOptions()
        options.chargeAmount = try arguments.amount("chargeAmount")
        options.currency = arguments.string("currency")?.uppercased() ?? defaults.currency
        options.description = arguments.string("description")
        options.paymentMethod = try arguments.optional("paymentMethod", PaymentMethod.init(rawValue:))
        options.tokenType = try arguments.optional("tokenType", TokenType.init(rawValue:)) ?? defaults.tokenType
        options.paymentConnector = arguments.string("paymentConnector") ?? defaults.paymentConnector
        let isCard = (options.paymentMethod ?? .creditCard) == .creditCard
        options.securityCode = arguments.bool("securityCode") ?? (isCard ? defaults.securityCode : nil)
        options.postalCode = arguments.bool("postalCode") ?? (isCard ? defaults.postalCode : nil)
        options.minPostalCodeLength = arguments.int("minPostalCodeLength")
        options.validCardTypes = try arguments.strings("validCardTypes").map { names throws(FlowError) in
            try names.map { name throws(FlowError) in
                guard let type = CardType(rawValue: name) else { throw .invalidArgument("validCardTypes: unknown card type \(name)") }
                return type
            }
        }
        options.timeout = arguments.int("timeout")
        options.bankAccountType = try arguments.optional("bankAccountType", BankAccountType.init(rawValue:))
        options.confirmation = arguments.bool("confirmation")
        options.requireMatchingInputs = try arguments.strings("requireMatchingInputs").map { names throws(FlowError) in
            try names.map { name throws(FlowError) in
                guard let input = MatchableInput(rawValue: name) else { throw .invalidArgument("requireMatchingInputs: unknown item \(name)") }
                return input
            }
        }
        options.input = arguments.string("input")
        options.parameters = try arguments.connectorParameters("parameter")
        if options.paymentMethod == .achDebit, options.tokenType == .paymentMethod, arguments.values["tokenType"] == nil { options.tokenType = nil }
        return options
    }

    static func enumSchema<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ description: String) -> JSONValue where T.RawValue == String {
        ["type": "string", "enum": .array(T.allCases.map { .string($0.rawValue) }), "description": .string(description)]
    }

    private func startTool() -> Tool {
        Tool(
            name: FlowTool.startPaymentCapture.rawValue, title: "Start a payment",
            description: "Starts a secure payment session on a live call. Without chargeAmount (or with 0) the card (or bank account) is tokenized for later use; with it, the amount is charged at completion. Every option of Twilio's Payments API is available. Returns the session status and the next step.",
            inputSchema: [
                "type": "object",
                "properties": [
                    "callSid": Self.callSIDSchema,
                    "chargeAmount": ["type": ["number", "string"], "pattern": "^[0-9]+(\\.[0-9]+)?$", "minimum": 0,
                                     "description": "Amount to charge, e.g. 9.99 or \"9.99\" (a string is kept exactly); omit or 0 to tokenize only."],
                    "currency": ["type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code, e.g. USD (default from CURRENCY)."],
                    "description": ["type": "string", "maxLength": 255, "description": "Passed to the payment connector."],
                    "paymentMethod": Self.enumSchema(PaymentMethod.self, "credit-card (default) or ach-debit."),
                    "tokenType": Self.enumSchema(TokenType.self, "Token kind (default from TOKEN_TYPE; payment-method is Stripe only)."),
                    "paymentConnector": ["type": "string", "minLength": 1, "description": "The Pay Connector's unique name (default from PAYMENT_CONNECTOR, else Twilio's Default)."],
                    "securityCode": ["type": "boolean", "description": "Ask for the security code (default from SECURITY_CODE, true)."],
                    "postalCode": ["type": "boolean", "description": "Ask for the billing postal code (default from POSTAL_CODE, false)."],
                    "minPostalCodeLength": ["type": "integer", "minimum": 1, "description": "Fewest characters a postal code may have."],
                    "validCardTypes": ["type": "array", "items": Self.enumSchema(CardType.self, "A card brand."), "minItems": 1,
                                       "description": "Card brands accepted (Twilio's default: visa, mastercard, amex)."],
                    "timeout": ["type": "integer", "minimum": 1, "maximum": 600, "description": "Seconds of keypad silence allowed (Twilio's default 5)."],
                    "bankAccountType": Self.enumSchema(BankAccountType.self, "ACH only: the kind of account."),
                    "confirmation": ["type": "boolean", "description": "Have the caller confirm the last four digits before submitting."],
                    "requireMatchingInputs": ["type": "array", "items": Self.enumSchema(MatchableInput.self, "An item the caller types twice."),
                                              "description": "Items the caller types twice; each second entry is captured with its capture tool's captureType."],
                    "input": ["type": "string", "enum": ["dtmf"], "description": "How the caller enters details (Twilio accepts only dtmf)."],
                    "parameter": ["type": "object", "additionalProperties": ["type": ["string", "number", "boolean"]],
                                  "description": "Connector-specific parameters (Twilio's Parameter), e.g. {\"AVSName\": \"Ada Lovelace\"} for some ACH connectors."],
                ],
                "required": ["callSid"],
                "additionalProperties": false,
            ],
            outputSchema: SessionJSON.schema,
            annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true)
        ) { [self] call in
            await withFlow { coordinator throws(FlowError) in
                let arguments = ToolArguments(call.arguments)
                let callSID = try arguments.required("callSid", CallSID.init)
                let session = try await coordinator.start(callSID: callSID, options: try options(from: arguments))
                return result(session, prefix: "Payment session \(session.paymentSID?.rawValue ?? "?") started on call \(callSID).")
            }
        }
    }

    private func captureTool(_ item: PaymentItem) -> Tool {
        let tool = FlowTool.capture(item)
        var properties: [String: JSONValue] = ["callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema]
        let kinds = [item] + (item.matcher.map { [$0] } ?? [])
        properties["captureType"] = ["type": "string", "enum": .array(kinds.map { .string($0.rawValue) }),
                                     "description": .string(item.matcher.map { "\(item.rawValue) (the default), or \($0.rawValue) for the second entry when the session requires matching inputs." }
                                        ?? "Optional; kept for compatibility. Must be \(item.rawValue) if given.")]
        return Tool(
            name: tool.rawValue, title: "Capture the \(item.spokenName)",
            description: "Asks Twilio to collect the \(item.spokenName) from the caller's keypad. Tell the caller what to type first; progress arrives masked in the status. Can be called again to re-capture after an error.",
            inputSchema: ["type": "object", "properties": .object(properties), "required": ["callSid", "paymentSid"], "additionalProperties": false],
            outputSchema: SessionJSON.schema,
            annotations: ToolAnnotations(readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true)
        ) { [self] call in
            await withFlow { coordinator throws(FlowError) in
                let arguments = ToolArguments(call.arguments)
                let sid = try arguments.required("paymentSid", PaymentSID.init)
                let callSID = try arguments.required("callSid", CallSID.init)
                let target = try arguments.optional("captureType", PaymentItem.init(rawValue:)) ?? item
                guard target.base == item else { throw .invalidArgument("captureType \(target.rawValue) is not captured by \(tool.rawValue)") }
                let session = try await coordinator.capture(target, paymentSID: sid, callSID: callSID)
                return result(session, prefix: "Capturing the \(target.spokenName).")
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
            await withFlow { coordinator throws(FlowError) in
                let arguments = ToolArguments(call.arguments)
                let sid = try arguments.required("paymentSid", PaymentSID.init)
                let callSID = try arguments.required("callSid", CallSID.init)
                return result(try await action(coordinator, sid, callSID))
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
            await withFlow { coordinator throws(FlowError) in
                let arguments = ToolArguments(call.arguments)
                let sid = try arguments.required("paymentSid", PaymentSID.init)
                guard var session = await coordinator.session(sid) else { throw .unknownSession(sid) }
                if let callSID = try arguments.optional("callSid", CallSID.init), callSID != session.callSID {
                    throw .wrongCall(paymentSID: sid, callSID: callSID)
                }
                if let wait = arguments.double("waitSeconds"), wait > 0 {
                    let after = arguments.int("afterVersion").map(UInt64.init) ?? session.version
                    session = await coordinator.waitForChange(sid, afterVersion: after, timeout: .milliseconds(Int(wait * 1000))) ?? session
                }
                return result(session)
            }
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
            return [ResourceContents(uri: uri, mimeType: "application/json", text: redactor.redact(SessionJSON.status(session), keeping: SessionJSON.resultKeys).serialized())]
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
            let text = redactor.redact(PromptLibrary.text(prompt, session: session))
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
