public import TwilioPayments

/// What the simulated caller does when asked for one item.
public enum KeypadEntry: Sendable, Equatable {
    /// Types these digits (then `#`).
    case digits(String)
    /// Types nothing: Twilio reports `input-timeout`.
    case silence
    /// Hangs up: the session ends with `caller-hung-up`.
    case hangUp
    /// Hangs up and Twilio sends no callback about it: only the Calls API tells that the call
    /// is over (the reading in which no `Result` follows a hang-up).
    case hangUpSilently
    /// Presses star: the session ends with `caller-interrupted-with-star`.
    case pressStar
}

/// How the payment processor answers at completion.
public enum CompletionBehavior: Sendable, Equatable {
    case succeed
    /// `payment-connector-error` with `PayErrorCode` `code` (64012 by default: card declined).
    case decline(code: Int = 64012, message: String = "card_declined")
}

/// A simulated caller: what they type for each item, attempt by attempt, and how the
/// processor answers at the end. Items with no scripted attempt left get the default valid
/// entry (the Visa test card, a future expiry, `123`, `94105`, a valid routing and account
/// number).
///
/// ```swift
/// var script = CallerScript()
/// script.entries[.cardNumber] = [.digits("4111111111111112"), .digits("4111111111111111")]  // wrong, then right
/// script.entries[.securityCode] = [.silence]                                                      // times out once
/// script.completion = .decline()
/// ```
public struct CallerScript: Sendable, Equatable {
    /// Attempts per item, used in order; the default entry follows once they run out.
    public var entries: [PaymentItem: [KeypadEntry]]
    public var completion: CompletionBehavior

    public init(entries: [PaymentItem: [KeypadEntry]] = [:], completion: CompletionBehavior = .succeed) {
        self.entries = entries
        self.completion = completion
    }

    /// The happy caller.
    public static let `default` = CallerScript()

    /// The documented TEST-mode values.
    public static func defaultEntry(for item: PaymentItem) -> String {
        switch item {
        case .cardNumber, .cardNumberMatcher: return "4111111111111111"
        case .expirationDate, .expirationDateMatcher: return "1230"
        case .securityCode, .securityCodeMatcher: return "123"
        case .postalCode, .postalCodeMatcher: return "94105"
        case .bankRoutingNumber: return "121000358"
        case .bankAccountNumber: return "123456789"
        }
    }

    /// Takes the next attempt for `item`.
    mutating func nextEntry(for item: PaymentItem) -> KeypadEntry {
        if var attempts = entries[item], !attempts.isEmpty {
            let entry = attempts.removeFirst()
            entries[item] = attempts
            return entry
        }
        return .digits(Self.defaultEntry(for: item))
    }
}
