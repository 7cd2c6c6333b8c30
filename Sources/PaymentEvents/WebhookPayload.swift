import Foundation
public import PaymentFlow
import TwilioPayments

/// A notice as the JSON object a webhook carries, in the Standard Webhooks shape:
///
/// ```json
/// {"id": "evt_…", "type": "payment.item.captured", "timestamp": "2026-12-04T09:50:00.000Z",
///  "data": {"paymentSid": "PK…", "callSid": "CA…", "reference": "conv-42", "version": 7,
///           "item": "payment-card-number", "reason": null,
///           "status": {"phase": "active", "paymentCardNumber": "xxxxxxxxxxxx1111", …},
///           "nextStep": {"action": "capture", "item": "security-code", "waitForCaller": false,
///                        "instruction": "Ask the caller to type the security code …"}}}
/// ```
///
/// The status carries only masked values, as every stored session does (and is masked once
/// more here); the schema is `Docs/payment-events.schema.json`.
public enum WebhookPayload {
    /// The event's JSON body, keys sorted: the same bytes for the same notice.
    public static func body(_ notice: PaymentNotice) -> [UInt8] {
        let object: [String: Any] = [
            "id": notice.id,
            "type": notice.type.rawValue,
            "timestamp": timestamp(notice.occurredAt),
            "data": data(notice),
        ]
        let bytes =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return Array(bytes)
    }

    static func timestamp(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    static func data(_ notice: PaymentNotice) -> [String: Any] {
        let session = notice.session.sanitized()
        var data: [String: Any] = [
            "callSid": session.callSID.rawValue,
            "paymentSid": session.paymentSID?.rawValue ?? NSNull(),
            "reference": session.reference ?? NSNull(),
            "version": session.version,
            "status": status(session),
            "nextStep": nextStep(session.nextStep),
        ]
        data["item"] = notice.item?.rawValue ?? NSNull()
        data["reason"] = notice.reason ?? NSNull()
        return data
    }

    /// The masked status, with the field names of the MCP status (the seed's names).
    static func status(_ session: PaymentSession) -> [String: Any] {
        let masked = MaskedStatus(session)
        var status: [String: Any] = [
            "phase": masked.phase,
            "paymentMethod": masked.paymentMethod,
            "required": masked.required.map(\.rawValue),
            "missing": masked.missing.map(\.rawValue),
        ]
        for (key, value) in masked.values { status[key] = value }
        if let reason = masked.failure?.reason { status["failureReason"] = reason }
        var items: [String: Any] = [:]
        for entry in masked.items {
            var item: [String: Any] = ["state": entry.state, "failedAttempts": entry.failedAttempts]
            if let value = entry.masked { item["masked"] = value }
            if let error = entry.errorType { item["errorType"] = error }
            items[entry.item.rawValue] = item
        }
        status["items"] = items
        return status
    }

    /// The next step without any protocol's words: an action, its item, whether to wait, and
    /// the sentence for the agent.
    static func nextStep(_ step: NextStep) -> [String: Any] {
        let (action, item): (String, PaymentItem?)
        switch step.action {
        case .waitForStart: (action, item) = ("wait-for-start", nil)
        case .waitForCaller(let waiting): (action, item) = ("wait-for-caller", waiting)
        case .capture(let next): (action, item) = ("capture", next)
        case .complete: (action, item) = ("complete", nil)
        case .waitForResult: (action, item) = ("wait-for-result", nil)
        case .waitForCancellation: (action, item) = ("wait-for-cancellation", nil)
        case .tellCaller: (action, item) = ("tell-caller", nil)
        case .startOver: (action, item) = ("start-over", nil)
        case .callOver: (action, item) = ("call-over", nil)
        }
        return [
            "action": action, "item": item?.rawValue ?? NSNull(), "waitForCaller": step.waitForCaller,
            "instruction": step.instruction,
        ]
    }
}
