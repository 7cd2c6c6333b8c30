/// Why a status callback is not taken: a case a host can switch on, and a sentence for whoever
/// sent it.
public enum CallbackRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The callback reports a `Result`, so it would finish its session, without these fields
    /// Twilio sends on every callback (missing, or not a SID of their kind).
    case finishingWithoutIdentity(missing: [String])

    public var description: String {
        switch self {
        case .finishingWithoutIdentity(let missing):
            let names =
                missing.count == 1
                ? missing[0] : missing.dropLast().joined(separator: ", ") + " and " + (missing.last ?? "")
            return
                "a callback with a Result finishes the payment session, so it must carry AccountSid, CallSid and Sid as Twilio "
                + "sends them; \(names) \(missing.count == 1 ? "is" : "are") missing or malformed"
        }
    }
}

extension PaymentStatusCallback {
    /// Whether applying this callback finishes its session: it reports how the session ended
    /// (`Result`, whatever its value).
    public var finishesSession: Bool { result != nil }

    /// Why this callback must not be applied, or `nil` when it may be.
    ///
    /// A callback that finishes its session must carry what Twilio sends on every callback
    /// (reference §4): `AccountSid`, `CallSid` and the payment `Sid`, each a SID of its kind. So
    /// a sender who knows only a session's callback URL (when no Auth Token signs callbacks)
    /// cannot end the payment; the payment flow then applies it only to the session whose
    /// payment and call SIDs it names.
    public var refusal: CallbackRefusal? {
        guard finishesSession else { return nil }
        var missing: [String] = []
        if accountSID == nil { missing.append("AccountSid") }
        if callSID == nil { missing.append("CallSid") }
        if paymentSID == nil { missing.append("Sid") }
        return missing.isEmpty ? nil : .finishingWithoutIdentity(missing: missing)
    }
}
