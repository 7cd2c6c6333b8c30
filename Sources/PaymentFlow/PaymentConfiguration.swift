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

    /// The items the caller is asked to type twice.
    private var matched: Set<PaymentItem> {
        Set((options.requireMatchingInputs ?? []).compactMap { PaymentItem(rawValue: $0.rawValue) })
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
            return items.flatMap { item in matched.contains(item) ? [item, item.matcher!] : [item] }
        }
    }

    /// The items that make sense for this payment method: every card item (Twilio may ask for
    /// one the options left out), and the matchers of the items to be typed twice.
    public var applicableItems: [PaymentItem] {
        if paymentMethod == .achDebit { return [.bankRoutingNumber, .bankAccountNumber] }
        return [PaymentItem.cardNumber, .securityCode, .expirationDate, .postalCode].flatMap { item in
            matched.contains(item) ? [item, item.matcher!] : [item]
        }
    }
}
