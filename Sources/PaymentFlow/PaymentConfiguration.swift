import Foundation
public import TwilioPayments

/// What a session was asked to do.
public struct PaymentConfiguration: Sendable, Equatable {
    /// The options sent to Twilio when the session was created.
    public var options: PaymentSessionOptions

    public init(options: PaymentSessionOptions = PaymentSessionOptions()) {
        self.options = options
    }

    public var paymentMethod: PaymentMethod { options.paymentMethod ?? .creditCard }
    /// `true` when an amount greater than zero is charged; `false` when the card or account is
    /// only tokenized (no amount, or zero, as Twilio treats it).
    public var isCharge: Bool { options.isCharge }

    /// The items the caller is asked to type twice (at most four: an array, read once per use).
    private var matched: [PaymentItem] {
        guard let inputs = options.requireMatchingInputs, !inputs.isEmpty else { return [] }
        return inputs.compactMap { PaymentItem(rawValue: $0.rawValue) }
    }

    /// `items`, each followed by its matcher when it is to be typed twice.
    private func withMatchers(_ items: [PaymentItem]) -> [PaymentItem] {
        let matched = self.matched
        guard !matched.isEmpty else { return items }
        return items.flatMap { item in matched.contains(item) ? [item, item.matcher!] : [item] }
    }

    /// The items this configuration needs, before Twilio says otherwise.
    public var requiredItems: [PaymentItem] {
        switch paymentMethod {
        case .achDebit:
            return [.bankRoutingNumber, .bankAccountNumber]
        case .creditCard:
            var items: [PaymentItem] = [.cardNumber]
            if options.securityCode ?? true { items.append(.securityCode) }
            items.append(.expirationDate)
            if options.postalCode ?? true { items.append(.postalCode) }
            return withMatchers(items)
        }
    }

    /// The items that make sense for this payment method: every card item (Twilio may ask for
    /// one the options left out), and the matchers of the items to be typed twice.
    public var applicableItems: [PaymentItem] {
        if paymentMethod == .achDebit { return [.bankRoutingNumber, .bankAccountNumber] }
        return withMatchers([.cardNumber, .securityCode, .expirationDate, .postalCode])
    }
}
