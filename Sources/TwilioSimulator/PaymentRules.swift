import Foundation
import TwilioPayments

/// The checks Twilio's Pay applies to what a caller types, and how it masks the result.
enum PaymentRules {
    /// The brand of a card number, by its prefix.
    static func cardType(_ number: String) -> String? {
        let digits = Array(number.utf8).map { Int($0) - 48 }
        func prefix(_ count: Int) -> Int { digits.prefix(count).reduce(0) { $0 * 10 + $1 } }
        if number.hasPrefix("4") { return "visa" }
        if (51...55).contains(prefix(2)) || (2221...2720).contains(prefix(4)) { return "mastercard" }
        if prefix(2) == 34 || prefix(2) == 37 { return "amex" }
        if prefix(4) == 6011 || prefix(2) == 65 || (644...649).contains(prefix(3)) { return "discover" }
        if prefix(2) == 36 || prefix(2) == 38 || (300...305).contains(prefix(3)) { return "diners-club" }
        if prefix(2) == 35 { return "jcb" }
        if prefix(2) == 62 { return "unionpay" }
        if prefix(2) == 67 || prefix(2) == 50 { return "maestro" }
        return nil
    }

    static func isDigits(_ text: String) -> Bool { !text.isEmpty && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }

    /// The Luhn checksum every card number carries.
    static func passesLuhn(_ number: String) -> Bool {
        guard isDigits(number) else { return false }
        var sum = 0
        for (index, byte) in number.utf8.reversed().enumerated() {
            var digit = Int(byte) - 48
            if index % 2 == 1 {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
        }
        return sum % 10 == 0
    }

    /// The ABA checksum of a US routing number.
    static func isRoutingNumber(_ number: String) -> Bool {
        guard number.utf8.count == 9, isDigits(number) else { return false }
        let d = number.utf8.map { Int($0) - 48 }
        return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0
    }

    /// `MMYY`, a real month, not in the past.
    static func isValidExpiry(_ text: String, now: Date) -> Bool {
        guard text.utf8.count == 4, isDigits(text), let month = Int(text.prefix(2)), let year = Int(text.suffix(2)),
            (1...12).contains(month)
        else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = calendar.dateComponents([.year, .month], from: now)
        let current = (components.year! % 100) * 12 + components.month!
        return year * 12 + month >= current
    }

    /// The error a complete entry earns, or `nil` when it is accepted.
    static func error(
        for item: PaymentItem, value: String, acceptedCards: [String], cardNumber: String?, minPostalCodeLength: Int?,
        now: Date
    ) -> PaymentErrorType? {
        switch item {
        case .cardNumber, .cardNumberMatcher:
            guard (13...19).contains(value.utf8.count), passesLuhn(value) else { return .invalidCardNumber }
            guard let type = cardType(value), acceptedCards.contains(type) else { return .invalidCardType }
            return nil
        case .expirationDate, .expirationDateMatcher:
            return isValidExpiry(value, now: now) ? nil : .invalidDate
        case .securityCode, .securityCodeMatcher:
            let expected = cardNumber.flatMap(cardType) == "amex" ? 4 : 3
            return value.utf8.count == expected && isDigits(value) ? nil : .invalidSecurityCode
        case .postalCode, .postalCodeMatcher:
            let minimum = minPostalCodeLength ?? 3
            return value.utf8.count >= minimum && value.utf8.count <= 10 && value.utf8.allSatisfy({ $0 < 128 })
                ? nil : .invalidPostalCode
        case .bankRoutingNumber:
            return isRoutingNumber(value) ? nil : .invalidBankRoutingNumber
        case .bankAccountNumber:
            return (4...17).contains(value.utf8.count) && isDigits(value) ? nil : .invalidBankAccountNumber
        }
    }

    /// The value Twilio reports while `typed` digits of `item` have arrived (partial) or when
    /// the entry is done (final).
    static func masked(_ item: PaymentItem, typed: String, final: Bool) -> String {
        let count = typed.utf8.count
        switch item {
        case .cardNumber, .cardNumberMatcher:
            return final && count > 4
                ? String(repeating: "x", count: count - 4) + typed.suffix(4) : String(repeating: "x", count: count)
        case .securityCode, .securityCodeMatcher:
            return String(repeating: "x", count: count)
        case .bankAccountNumber:
            return final && count > 2
                ? String(repeating: "*", count: count - 2) + typed.suffix(2) : String(repeating: "*", count: count)
        case .expirationDate, .expirationDateMatcher, .postalCode, .postalCodeMatcher, .bankRoutingNumber:
            return typed
        }
    }

    /// The callback field that carries `item`.
    static func field(for item: PaymentItem) -> String {
        switch item {
        case .cardNumber, .cardNumberMatcher: return "PaymentCardNumber"
        case .expirationDate, .expirationDateMatcher: return "ExpirationDate"
        case .securityCode, .securityCodeMatcher: return "SecurityCode"
        case .postalCode, .postalCodeMatcher: return "PaymentCardPostalCode"
        case .bankRoutingNumber: return "BankRoutingNumber"
        case .bankAccountNumber: return "BankAccountNumber"
        }
    }
}
