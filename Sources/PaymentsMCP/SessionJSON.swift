public import MCPCore
public import PaymentFlow
import Foundation
public import TwilioPayments

/// The JSON shape of a payment session, shared by the status resource and every tool result:
/// the TypeScript server's keys (`paymentSid`, `paymentCardNumber`, `paymentCardType`,
/// `securityCode`, `expirationDate`, `paymentConfirmationCode`, `result`, `profileId`,
/// `paymentToken`, `paymentMethod`) plus the call, the phase, every item's state, what is
/// required and missing, the last errors and the next step. Only masked values appear.
public enum SessionJSON {
    /// The status object of `session`; waits its next step suggests last `waitSeconds`.
    public static func status(
        _ session: PaymentSession, waitSeconds: Double = PaymentsMCP.defaultMaximumWaitSeconds
    ) -> JSONValue {
        let status = MaskedStatus(session)
        var items: [String: JSONValue] = [:]
        for entry in status.items {
            items[entry.item.rawValue] = .object(dropping: [
                "state": .string(entry.state), "masked": entry.masked.map(JSONValue.string),
                "errorType": entry.errorType.map(JSONValue.string),
                "failedAttempts": .integer(Int64(entry.failedAttempts)),
                "required": .bool(entry.required),
            ])
        }
        let step = MCPNextStep(session.nextStep, for: session, waitSeconds: waitSeconds)
        var members: [String: JSONValue?] = [
            "callSid": .string(session.callSID.rawValue),
            "paymentSid": session.paymentSID.map { .string($0.rawValue) },
            "reference": session.reference.map(JSONValue.string),
            "phase": .string(status.phase),
            "paymentMethod": .string(status.paymentMethod),
            "items": .object(items),
            "required": .array(status.required.map { .string($0.rawValue) }),
            "missing": .array(status.missing.map { .string($0.rawValue) }),
            "requiredSource": .string(session.requiredFromTwilio ? "twilio" : "options"),
            "unrecognizedRequired": session.unrecognizedRequired.isEmpty
                ? nil : .array(session.unrecognizedRequired.map(JSONValue.string)),
            "lastRequestError": session.lastRequestError.map(JSONValue.string),
            "failure": status.failure.map { failure in
                .object(dropping: [
                    "reason": .string(failure.reason), "paymentError": failure.paymentError.map(JSONValue.string),
                    "payErrorCode": failure.payErrorCode.map { .integer(Int64($0)) },
                    "connectorError": failure.connectorError.map(JSONValue.string),
                ])
            },
            "recordings": session.recordings.map { pause in
                .object(dropping: [
                    "state": .string(pause.state.rawValue), "paused": .integer(Int64(pause.recordings.count)),
                    "reason": pause.reason.map(JSONValue.string),
                ])
            },
            "version": .integer(Int64(session.version)),
            "updatedAt": .string(timestamp(session.updatedAt)),
            "nextStep": step.json,
        ]
        for (key, value) in status.values { members[key] = .string(value) }
        return .object(members.compactMapValues { $0 })
    }

    /// The members whose values are the payment's result, which the host needs exactly as Twilio
    /// sent them (a token is not card data): the redactor leaves them alone.
    public static let resultKeys: Set<String> = MaskedStatus.resultKeys

    /// The schema of the status object (the resource's contents, and every successful tool
    /// result's members besides the call's own).
    public static let schema: JSONValue = .object([
        "type": "object", "properties": .object(statusProperties), "required": statusRequired,
    ])

    static let statusRequired: JSONValue = [
        "callSid", "phase", "paymentMethod", "items", "required", "missing", "version", "nextStep",
    ]

    static let statusProperties: [String: JSONValue] = [
        "callSid": ["type": "string"], "paymentSid": ["type": "string"], "reference": ["type": "string"],
        "phase": names(PaymentPhase.Kind.allCases),
        "paymentMethod": names(PaymentMethod.allCases), "paymentCardNumber": ["type": "string"],
        "paymentCardType": ["type": "string"],
        "securityCode": ["type": "string"], "expirationDate": ["type": "string"],
        "paymentConfirmationCode": ["type": "string"],
        "paymentToken": ["type": "string"], "profileId": ["type": "string"], "result": ["type": "string"],
        "items": [
            "type": "object", "propertyNames": names(PaymentItem.allCases),
            "additionalProperties": [
                "type": "object",
                "properties": [
                    "state": names(ItemState.Kind.allCases), "masked": ["type": "string"],
                    "errorType": ["type": "string"],
                    "failedAttempts": ["type": "integer", "minimum": 0], "required": ["type": "boolean"],
                ],
                "required": ["state", "failedAttempts", "required"],
            ],
        ],
        "required": ["type": "array", "items": names(PaymentItem.allCases)],
        "missing": ["type": "array", "items": names(PaymentItem.allCases)], "version": ["type": "integer"],
        "requiredSource": ["type": "string", "enum": ["options", "twilio"]],
        "recordings": [
            "type": "object",
            "properties": [
                "state": names(RecordingsPause.State.allCases), "paused": ["type": "integer", "minimum": 0],
                "reason": ["type": "string"],
            ],
            "required": ["state", "paused"],
        ],
        "unrecognizedRequired": ["type": "array", "items": ["type": "string"]],
        "nextStep": [
            "type": "object",
            "properties": [
                "tool": names(FlowTool.allCases), "prompt": names(GuidanceTopic.allCases),
                "instruction": ["type": "string"],
                "waitForCaller": ["type": "boolean"],
                "arguments": [
                    "type": "object",
                    "description":
                        "The complete arguments of the call to make next (SIDs, captureType, waitSeconds, waitFor): call tool with them as they are.",
                ],
            ],
            "required": ["instruction", "waitForCaller"],
        ],
    ]

    /// The output schema every payment tool declares: one object, which is also the result's
    /// one text block. A success is the status plus `message` (the sentence to say or act on)
    /// and the call's flags; a refusal (`isError`) is `error` plus `message`.
    public static let toolResultSchema: JSONValue = {
        var properties = statusProperties
        properties["message"] = [
            "type": "string", "description": "One sentence for the agent: what happened and what to do or say next.",
        ]
        properties["resumed"] = [
            "type": "boolean",
            "description":
                "startPaymentCapture found this call's unfinished session with the same options and returned it; nothing was sent.",
        ]
        properties["repeated"] = [
            "type": "boolean", "description": "The same request was already under way or done; nothing was sent.",
        ]
        properties["pending"] = [
            "type": "boolean",
            "description": "Twilio had not answered the request within the wait; the status follows when it does.",
        ]
        properties["waited"] = [
            "type": "object",
            "properties": [
                "seconds": ["type": "number", "minimum": 0],
                "outcome": ["type": "string", "enum": ["done", "changed", "time-up", "cancelled"]],
            ],
            "required": ["seconds", "outcome"],
        ]
        properties["error"] = [
            "type": "object",
            "properties": [
                "reason": ["type": "string"], "message": ["type": "string"], "retryable": ["type": "boolean"],
                "whatToDo": ["type": "string"],
            ],
            "required": ["reason", "message", "retryable"],
        ]
        return .object([
            "type": "object", "properties": .object(properties),
            "anyOf": [["required": statusRequired], ["required": ["error", "message"]]],
        ])
    }()

    /// A date as the status shows it: ISO 8601 with fractional seconds, in UTC.
    static func timestamp(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// A string schema whose values are the raw values of `cases`: generated from the Swift
    /// enums, so the schema cannot drift from the code.
    static func names<T: RawRepresentable>(_ cases: [T]) -> JSONValue where T.RawValue == String {
        ["type": "string", "enum": .array(cases.map { .string($0.rawValue) })]
    }

    /// The status resource's URI for a session.
    public static func uri(callSID: CallSID, paymentSID: PaymentSID) -> String {
        "payment://\(callSID)/\(paymentSID)/status"
    }
}
