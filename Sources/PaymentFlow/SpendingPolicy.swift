public import Foundation
public import TwilioPayments

/// What the server lets a principal charge, whatever the model says: the host's limits, not
/// the agent's. Every limit is optional; the default allows what Twilio allows.
///
/// Amounts are compared as decimals, never through binary floating point. Daily totals are
/// per principal, per currency and per UTC day, counted in a ``SpendingLedger`` shared by every
/// replica; a charge is counted when its session starts and given back when the session ends
/// without charging (failed, cancelled, call ended).
public struct SpendingPolicy: Sendable, Equatable {
    /// The largest `chargeAmount` of one payment.
    public var maximumCharge: Decimal?
    /// The currencies that may be charged (uppercased ISO 4217 codes); `nil` allows any. A
    /// payment without a currency is in Twilio's default, `USD`.
    public var currencies: Set<String>?
    /// The most one principal may charge per UTC day, per currency.
    public var dailyLimit: Decimal?
    /// Whether a charge needs an amount the backend registered for the call
    /// (``PaymentCoordinator/registerAmountDue(_:onCall:)``): the model then never picks one.
    public var requireAmountDue: Bool

    public init(
        maximumCharge: Decimal? = nil, currencies: Set<String>? = nil, dailyLimit: Decimal? = nil,
        requireAmountDue: Bool = false
    ) {
        self.maximumCharge = maximumCharge
        self.currencies = currencies.map { Set($0.map { $0.uppercased() }) }
        self.dailyLimit = dailyLimit
        self.requireAmountDue = requireAmountDue
    }

    /// No limit at all.
    public static let unlimited = SpendingPolicy()

    /// The currency a payment is charged in: its own, or Twilio's default.
    public static func currency(of options: PaymentSessionOptions) -> String {
        (options.currency ?? "USD").uppercased()
    }

    /// `text` as a decimal, read with a fixed locale.
    public static func decimal(_ text: String) -> Decimal? {
        Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
    }

    /// A decimal as plain text (`12.5`), for messages and the ledger.
    public static func text(_ amount: Decimal) -> String {
        var value = amount
        return NSDecimalString(&value, Locale(identifier: "en_US_POSIX"))
    }
}

/// Why the spending policy refused a start: each case names the limit.
public enum PolicyRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The amount is over the per-payment maximum.
    case chargeTooLarge(amount: String, maximum: String, currency: String)
    /// The currency is not one the policy allows.
    case currencyNotAllowed(currency: String, allowed: [String])
    /// The principal's daily total would pass the daily limit.
    case dailyLimitReached(amount: String, spentToday: String, limit: String, currency: String)
    /// The backend registered another amount for this call.
    case amountDiffers(asked: String, due: String, currency: String)
    /// Charges need an amount registered by the backend, and none is.
    case amountDueRequired
    /// The principal may tokenize but not charge.
    case chargeNotPermitted

    /// A short stable name, for refusals and audit records.
    public var reason: String {
        switch self {
        case .chargeTooLarge: return "charge-over-maximum"
        case .currencyNotAllowed: return "currency-not-allowed"
        case .dailyLimitReached: return "daily-limit-reached"
        case .amountDiffers: return "amount-differs-from-amount-due"
        case .amountDueRequired: return "amount-due-required"
        case .chargeNotPermitted: return "insufficient-scope"
        }
    }

    public var description: String {
        switch self {
        case .chargeTooLarge(let amount, let maximum, let currency):
            return
                "the charge \(amount) \(currency) is over this server's maximum of \(maximum) \(currency) per payment"
        case .currencyNotAllowed(let currency, let allowed):
            return "charges in \(currency) are not allowed here (allowed: \(allowed.joined(separator: ", ")))"
        case .dailyLimitReached(let amount, let spent, let limit, let currency):
            return
                "a charge of \(amount) \(currency) would pass this client's daily limit of \(limit) \(currency) (\(spent) \(currency) already charged or under way today)"
        case .amountDiffers(let asked, let due, let currency):
            return
                "the amount due on this call is \(due) \(currency), set by the business; \(asked) cannot be charged instead"
        case .amountDueRequired:
            return "charges need an amount due registered for the call by the business's backend, and none is"
        case .chargeNotPermitted:
            return "this client may tokenize a card or account but not charge one (it lacks the payments:charge scope)"
        }
    }
}

/// How a session's charge was authorized: counted against its owner's daily total on `day`
/// (given back if it charges nothing), and whether the backend fixed its amount.
public struct ChargeAuthorization: Sendable, Equatable {
    /// The UTC day (`2026-12-04`) the charge counts against; `nil` when no daily limit counted it.
    public var countedOn: String?
    /// Whether the amount came from an ``AmountDue``.
    public var fromAmountDue: Bool

    public init(countedOn: String? = nil, fromAmountDue: Bool = false) {
        self.countedOn = countedOn
        self.fromAmountDue = fromAmountDue
    }

    /// `date`'s UTC day, as the ledger keys it.
    public static func day(of date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }
}
