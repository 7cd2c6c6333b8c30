public import TwilioPayments
/// The rules that keep card data out of every session: whatever a callback contains, a card
/// number shows at most its last four digits, a security code no digit at all, and a bank
/// account number at most its last four digits.
///
/// The reducer applies them to every value it takes from a callback, and the store applies
/// them again to every session it keeps, so a misbehaving source cannot put card data in.
public enum Masking {
    /// At most the last four digits of a card number stay visible; other digits become `x`.
    public static func cardNumber(_ value: String) -> String {
        keepLastDigits(value, visible: 4, mask: "x")
    }

    /// No digit of a security code stays visible.
    public static func securityCode(_ value: String) -> String {
        keepLastDigits(value, visible: 0, mask: "x")
    }

    /// At most the last four digits of a bank account number stay visible.
    public static func bankAccountNumber(_ value: String) -> String {
        keepLastDigits(value, visible: 4, mask: "*")
    }

    /// The value of `item` as it may be kept: masked where the item is secret, as reported
    /// where it is not (expiration dates, postal codes and routing numbers are not secret and
    /// Twilio reports them in clear).
    public static func value(_ value: String, for item: PaymentItem) -> String {
        switch item.base {
        case .cardNumber: return cardNumber(value)
        case .securityCode: return securityCode(value)
        case .bankAccountNumber: return bankAccountNumber(value)
        default: return value
        }
    }

    /// Whether `value` shows more of `item` than the rules allow.
    public static func exposes(_ value: String, for item: PaymentItem) -> Bool {
        Self.value(value, for: item) != value
    }

    static func keepLastDigits(_ value: String, visible: Int, mask: Character) -> String {
        // ASCII text (every value Twilio sends) by its bytes, each a character of its own: the
        // character loop below asked Unicode's tables whether `"4"` is a number, 4 % of a
        // reducer step (Docs/benchmarks.md). The same result for every ASCII value.
        if let maskByte = mask.asciiValue, value.utf8.allSatisfy({ $0 < 0x80 }) {
            var bytes = Array(value.utf8)
            let digits = bytes.reduce(0) { $0 + (Self.isDigit($1) ? 1 : 0) }
            guard digits > visible else { return value }
            var toMask = digits - visible
            for index in bytes.indices where toMask > 0 && Self.isDigit(bytes[index]) {
                bytes[index] = maskByte
                toMask -= 1
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        return keepLastDigitsByCharacter(value, visible: visible, mask: mask)
    }

    /// The same by characters: any text (and the reference the byte path is tested against).
    static func keepLastDigitsByCharacter(_ value: String, visible: Int, mask: Character) -> String {
        let digits = value.reduce(0) { $0 + ($1.isASCII && $1.isNumber ? 1 : 0) }
        guard digits > visible else { return value }
        var toMask = digits - visible
        var result = ""
        result.reserveCapacity(value.utf8.count)
        for character in value {
            if toMask > 0, character.isASCII, character.isNumber {
                result.append(mask)
                toMask -= 1
            } else {
                result.append(character)
            }
        }
        return result
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

extension PaymentSession {
    /// This session with every item value passed through ``Masking`` again.
    public func sanitized() -> PaymentSession {
        var copy = self
        for (item, progress) in items {
            switch progress.state {
            case .capturing(let masked?):
                copy.items[item]?.state = .capturing(masked: Masking.value(masked, for: item))
            case .captured(let masked?):
                copy.items[item]?.state = .captured(masked: Masking.value(masked, for: item))
            default:
                break
            }
        }
        return copy
    }
}
