public import Foundation
import TwilioPayments

/// An amount the voice app's backend fixed for a call before the agent starts: a start without
/// an amount charges it, and a start with another amount is refused.
public struct AmountDue: Sendable, Equatable {
    /// A decimal amount as text (`"49.90"`), greater than zero.
    public var amount: String
    /// ISO 4217, uppercased.
    public var currency: String
    /// Who registered it: only that principal, its tenant and operators see it, and it fixes
    /// only their charges; `nil` (a host without principals) applies to everyone.
    public var registeredBy: PaymentOwner?
    /// When it stops applying.
    public var expiresAt: Date

    public init(amount: String, currency: String = "USD", registeredBy: PaymentOwner? = nil, expiresAt: Date) {
        self.amount = amount
        self.currency = currency.uppercased()
        self.registeredBy = registeredBy
        self.expiresAt = expiresAt
    }

    /// Every problem with this amount; empty when it can be registered.
    public func validate() -> [String] {
        var problems = PaymentSessionOptions(chargeAmount: amount, currency: currency).validate()
        if problems.isEmpty, let value = SpendingPolicy.decimal(amount), value <= 0 {
            problems.append("the amount due must be greater than 0, got \(amount)")
        }
        return problems
    }
}
