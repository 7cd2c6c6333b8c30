public import TwilioPayments

/// The flow's words for an item (TwilioPayments' ``PaymentItem``). Each matcher is tracked as an
/// item of its own.
extension PaymentItem {
    /// The items a caller types once (no matchers), in asking order.
    public static let entries: [PaymentItem] = allCases.filter { !$0.isMatcher }

    /// Words for a person: "card number", "card number (second entry)".
    public var spokenName: String {
        switch base {
        case .cardNumber: return isMatcher ? "card number again (to confirm it)" : "card number"
        case .securityCode: return isMatcher ? "security code again (to confirm it)" : "security code"
        case .expirationDate: return isMatcher ? "expiration date again (to confirm it)" : "expiration date"
        case .postalCode: return isMatcher ? "postal code again (to confirm it)" : "postal code"
        case .bankRoutingNumber: return "bank routing number"
        default: return "bank account number"
        }
    }
}
