import Foundation
import Synchronization
@testable import PaymentFlow
import TwilioPayments
@_exported import PaymentsTestSupport

enum Sample {
    static let call = CallSID(validated: "CA" + String(repeating: "1", count: 32))
    static let otherCall = CallSID(validated: "CA" + String(repeating: "2", count: 32))
    static let payment = PaymentSID(validated: "PK" + String(repeating: "a", count: 32))
    static let date = Date(timeIntervalSince1970: 1_800_000_000)

    /// A card session already created (active).
    static func cardSession(
        _ options: PaymentSessionOptions = PaymentSessionOptions(chargeAmount: "9.99")
    ) -> PaymentSession {
        let fresh = PaymentSession(callSID: call, configuration: PaymentConfiguration(options: options), at: date)
        return PaymentReducer.reduce(fresh, .sessionCreated(payment, at: date)).session
    }

    static func achSession() -> PaymentSession {
        cardSession(PaymentSessionOptions(paymentMethod: .achDebit, bankAccountType: .consumerChecking))
    }

    /// Hundredths of a second after `date` for the next callback's `DateUpdated`: Twilio stamps every
    /// callback, so callbacks made one after another are stamped in that order.
    private static let ticks = Mutex<Int>(0)

    /// The `DateUpdated` text for the next callback.
    static func nextStamp() -> String {
        let tick = ticks.withLock { tick -> Int in
            tick += 1
            return tick
        }
        return Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(
            date.addingTimeInterval(Double(tick) / 100))
    }

    /// A callback with these fields, stamped after every earlier one unless `DateUpdated` is
    /// given (an empty `DateUpdated` leaves it out).
    static func callback(_ fields: [String: String], sid: PaymentSID = payment) -> PaymentStatusCallback {
        var all = fields
        all["Sid"] = sid.rawValue
        all["CallSid"] = call.rawValue
        if all["DateUpdated"] == nil { all["DateUpdated"] = nextStamp() }
        if all["DateUpdated"] == "" { all.removeValue(forKey: "DateUpdated") }
        return PaymentStatusCallback(fields: all.sorted { $0.key < $1.key })
    }

    /// Callbacks Twilio sends while the caller types `value` for `item`.
    static func typing(
        _ item: PaymentItem, field: String, masked: [String], cardType: String? = nil, required: String
    ) -> [PaymentStatusCallback] {
        var callbacks = masked.dropLast().map {
            callback(["Capture": item.rawValue, "PartialResult": "true", field: $0])
        }
        var last = ["Capture": item.rawValue, "PartialResult": "false", field: masked.last!, "Required": required]
        if let cardType { last["PaymentCardType"] = cardType }
        callbacks.append(callback(last))
        return callbacks
    }
}

/// Applies events in order, asserting nothing.
func run(_ session: PaymentSession, _ events: [PaymentEvent]) -> PaymentSession {
    events.reduce(session) { PaymentReducer.reduce($0, $1).session }
}
