public import TwilioPayments

/// Why a request was refused without calling Twilio: a case a host can switch on, and a
/// sentence for a person (host-neutral: it names no tool of any protocol).
public enum FlowRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// Twilio has not created the session yet.
    case stillStarting
    /// Completion was asked for and its result is awaited.
    case completing
    /// Cancellation was asked for and is under way.
    case cancelling
    /// The session has ended (its phase's name); a new one is needed.
    case finished(phase: String)
    /// The item does not belong to this payment method.
    case notApplicable(PaymentItem, PaymentMethod)
    /// `item` needs `first` captured before it (security code after card number; a second
    /// entry after the first).
    case outOfOrder(PaymentItem, first: PaymentItem)
    /// Another item is being typed; `requested` is what was asked for (none for completion).
    case itemInProgress(PaymentItem, requested: PaymentItem?)
    /// Completion needs these items first.
    case itemsMissing([PaymentItem])

    public var description: String {
        switch self {
        case .stillStarting: return "the payment session is still starting; wait for its payment SID"
        case .completing: return "the payment is being completed; wait for the result"
        case .cancelling: return "the payment session is being cancelled"
        case .finished(let phase): return "the payment session has ended (\(phase)); start a new payment session"
        case .notApplicable(let item, let method):
            return "the \(item.spokenName) is not part of a \(method == .achDebit ? "bank (ACH)" : "card") payment"
        case .outOfOrder(let item, let first):
            if item == .securityCode {
                return "capture the card number before the security code (Twilio requires this order)"
            }
            return "capture the \(first.spokenName) before asking for the \(item.spokenName)"
        case .itemInProgress(let current, let requested?):
            return
                "the \(current.spokenName) is still being captured; wait for it to finish before asking for the \(requested.spokenName)"
        case .itemInProgress(let current, nil):
            return "the \(current.spokenName) is still being captured; wait for it to finish"
        case .itemsMissing(let missing):
            let names = missing.map(\.spokenName)
            let list =
                names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
            return "cannot complete yet: the \(list) \(missing.count == 1 ? "is" : "are") still missing"
        }
    }
}
