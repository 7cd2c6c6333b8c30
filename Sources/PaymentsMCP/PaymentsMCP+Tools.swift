import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation
import Logging

/// The tools: start, capture, complete, cancel, status.
extension PaymentsMCP {
    // MARK: Tools

    static let callSIDSchema: JSONValue = ["type": "string", "pattern": "^CA[0-9a-fA-F]{32}$",
                                           "description": "The Twilio Call SID of the caller's call (the PSTN leg that carries the keypad tones)."]
    static let paymentSIDSchema: JSONValue = ["type": "string", "pattern": "^PK[0-9a-fA-F]{32}$",
                                              "description": "The Payment SID that startPaymentCapture returned."]

    func tools() -> [Tool] {
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


    /// A successful tool result: the first content block is the JSON of the status (the same as
    /// `structuredContent`, parseable as the TypeScript server's results were), the second the
    /// guidance in words.
    /// A session as a tool result: its status JSON (structured, and as the first text block),
    /// then the next step in words. Commands log at info; status reads, which agents repeat, at
    /// `level`. The status of each session version is built, redacted and serialized once
    /// (``RenderedStatuses``).
    func result(_ session: PaymentSession, prefix: String? = nil, level: Logger.Level = .info) -> ToolResult {
        logger.log(level: level, "payment tool result", metadata: [
            "call.sid": "\(session.callSID)", "payment.sid": "\(session.paymentSID?.rawValue ?? "-")",
            "payment.phase": "\(session.phase.name)", "payment.version": "\(session.version)",
            "next.tool": "\(MCPNextStep(session.nextStep).tool?.rawValue ?? "-")",
        ])
        let rendered = rendering(session)
        let guidance = prefix.map { redactor.redact($0) + " " + rendered.guidance } ?? rendered.guidance
        return ToolResult(content: [.text(rendered.text), .text(guidance)], structuredContent: rendered.status,
                          structuredContentValidated: rendered.conforms)
    }

    /// Checks each rendered status once against the tools' output schema.
    static let statusValidator = JSONSchemaValidator(schema: SessionJSON.schema)

    /// The status of `session`'s version, built, redacted and serialized once.
    func rendering(_ session: PaymentSession) -> RenderedStatuses.Entry {
        rendered.status(of: session) {
            let status = redactor.redact(SessionJSON.status(session), keeping: SessionJSON.resultKeys)
            return RenderedStatuses.Entry(version: session.version, status: status, text: status.serialized(),
                                          guidance: redactor.redact("Next step: \(MCPNextStep(session.nextStep).instruction)"),
                                          conforms: Self.statusValidator.validate(status, rootName: "structuredContent").isEmpty)
        }
    }

    /// A refusal: `isError`, no `structuredContent` (the tools' output schema describes a
    /// session); the first block is the JSON of the error, the second the message in words.
    func failure(_ error: FlowError) -> ToolResult {
        logger.warning("tool refused: \(error)")
        var detail: [String: JSONValue] = ["message": .string(redactor.redact(error.description))]
        if case .twilio(let twilio) = error, case .api(let api) = twilio {
            detail["twilioCode"] = api.code.map { .integer(Int64($0)) }
            detail["meaning"] = api.explanation.map(JSONValue.string)
            detail["whatToDo"] = api.remedy.map(JSONValue.string)
        }
        if case .callEnded = error { detail["callEnded"] = .bool(true) }
        detail["reason"] = .string(Self.reasonCode(error))
        detail["retryable"] = .bool(error.isRetryable)
        if case .rejected(.itemsMissing(let missing)) = error { detail["missing"] = .array(missing.map { .string($0.rawValue) }) }
        let json = redactor.redact(JSONValue.object(["error": .object(detail)]))
        return ToolResult(content: [.text(json.serialized()), .text(redactor.redact(error.description))], isError: true)
    }

    /// Runs a flow request for a resource or prompt, where a refusal is a JSON-RPC error rather
    /// than a tool result: -32603 with the sentence, and `data` carrying `reason` and `retryable`
    /// (a store that is briefly away is worth retrying).
    static func rethrowingForMCP<T>(_ body: () async throws(FlowError) -> T) async throws(JSONRPCError) -> T {
        do {
            return try await body()
        } catch {
            throw JSONRPCError(code: JSONRPCError.internalErrorCode, message: error.description,
                               data: .object(["reason": .string(reasonCode(error)), "retryable": .bool(error.isRetryable)]))
        }
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
        case .storeUnavailable: return "store-unavailable"
        }
    }

    /// Runs a tool body against the coordinator, turning every flow error into a refusal.
    func withFlow(_ body: (PaymentCoordinator) async throws(FlowError) -> ToolResult) async -> ToolResult {
        do {
            let coordinator = try await flow.coordinator(waitingUpTo: readinessTimeout)
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
        options.validCardTypes = try arguments.list("validCardTypes", of: "card type", CardType.init(rawValue:))
        options.timeout = arguments.int("timeout")
        options.bankAccountType = try arguments.optional("bankAccountType", BankAccountType.init(rawValue:))
        options.confirmation = arguments.bool("confirmation")
        options.requireMatchingInputs = try arguments.list("requireMatchingInputs", of: "item", MatchableInput.init(rawValue:))
        options.input = arguments.string("input")
        options.parameters = try arguments.connectorParameters("parameter")
        if options.paymentMethod == .achDebit, options.tokenType == .paymentMethod, arguments.values["tokenType"] == nil { options.tokenType = nil }
        return options
    }

    static func enumSchema<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ description: String) -> JSONValue where T.RawValue == String {
        ["type": "string", "enum": .array(T.allCases.map { .string($0.rawValue) }), "description": .string(description)]
    }

    func startTool() -> Tool {
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

    func captureTool(_ item: PaymentItem) -> Tool {
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

    func sessionTool(_ tool: FlowTool, title: String, description: String, annotations: ToolAnnotations,
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

    func statusTool() -> Tool {
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
                // The published snapshot answers without an actor hop; the store when it has none.
                guard var session = try await coordinator.latestSession(sid) else { throw .unknownSession(sid) }
                if let callSID = try arguments.optional("callSid", CallSID.init), callSID != session.callSID {
                    throw .wrongCall(paymentSID: sid, callSID: callSID)
                }
                if let wait = arguments.double("waitSeconds"), wait > 0 {
                    let after = arguments.int("afterVersion").map(UInt64.init) ?? session.version
                    session = try await coordinator.waitForChange(sid, afterVersion: after, timeout: .milliseconds(Int(wait * 1000))) ?? session
                }
                return result(session, level: .debug)
            }
        }
    }
}
