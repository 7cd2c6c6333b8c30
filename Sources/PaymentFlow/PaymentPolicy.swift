public import Foundation
public import TwilioPayments

// MARK: - Who owns a session

/// Who started a session: a principal's stable, non-secret name and, when the deployment groups
/// principals, its tenant. Stored with the session, so every replica judges access alike.
public struct PaymentOwner: Sendable, Hashable, CustomStringConvertible {
    /// The principal's id (`token:alice`, `oauth:user-42`, `local`).
    public var principal: String
    /// The principal's tenant, if any.
    public var tenant: String?

    public init(principal: String, tenant: String? = nil) {
        self.principal = principal
        self.tenant = tenant
    }

    public var description: String { principal + (tenant.map { "@" + $0 } ?? "") }
}

/// Who asks to act on or see a session, and whether they may see every session.
public struct PaymentActor: Sendable, Hashable {
    /// The principal asking (and the owner of what it starts).
    public var owner: PaymentOwner
    /// An operator sees and acts on every session.
    public var isOperator: Bool
    /// Whether it may start a payment that charges (rather than only tokenizes), the amount
    /// due of its call included.
    public var mayCharge: Bool

    public init(owner: PaymentOwner, isOperator: Bool = false, mayCharge: Bool = true) {
        self.owner = owner
        self.isOperator = isOperator
        self.mayCharge = mayCharge
    }

    /// Whether this actor may see and act on `session`: an operator always; otherwise the
    /// principal that started it, or one of the same tenant. A session that records no owner
    /// (started by a host without principals, or stored by an older build) is the operator's.
    public func mayAccess(_ session: PaymentSession) -> Bool {
        mayAccess(owner: session.owner)
    }

    /// Whether this actor may see and act on what `other` owns: an operator always; otherwise
    /// only what its own principal, or a principal of its tenant, owns (nothing owned by nobody).
    public func mayAccess(owner other: PaymentOwner?) -> Bool {
        if isOperator { return true }
        guard let other else { return false }
        if other.principal == owner.principal { return true }
        if let tenant = owner.tenant, other.tenant == tenant { return true }
        return false
    }

    /// Whether an amount due applies to this actor's payments (and may be read, replaced or
    /// withdrawn by it): one its principal or tenant registered, or one a host without
    /// principals registered (``AmountDue/registeredBy`` `nil`). Another tenant's amount due
    /// neither fixes this actor's charge nor shows to it.
    public func mayUse(_ due: AmountDue) -> Bool {
        due.registeredBy == nil || mayAccess(owner: due.registeredBy)
    }
}

// MARK: - What may be spent

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

    public init(maximumCharge: Decimal? = nil, currencies: Set<String>? = nil, dailyLimit: Decimal? = nil, requireAmountDue: Bool = false) {
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
            return "the charge \(amount) \(currency) is over this server's maximum of \(maximum) \(currency) per payment"
        case .currencyNotAllowed(let currency, let allowed):
            return "charges in \(currency) are not allowed here (allowed: \(allowed.joined(separator: ", ")))"
        case .dailyLimitReached(let amount, let spent, let limit, let currency):
            return "a charge of \(amount) \(currency) would pass this client's daily limit of \(limit) \(currency) (\(spent) \(currency) already charged or under way today)"
        case .amountDiffers(let asked, let due, let currency):
            return "the amount due on this call is \(due) \(currency), set by the business; \(asked) cannot be charged instead"
        case .amountDueRequired:
            return "charges need an amount due registered for the call by the business's backend, and none is"
        case .chargeNotPermitted:
            return "this client may tokenize a card or account but not charge one (it lacks the payments:charge scope)"
        }
    }
}

// MARK: - The ledger

/// Where daily totals and amounts due live, shared by every replica: the in-memory default
/// serves one process; the PostgreSQL ledger serves many.
public protocol SpendingLedger: Sendable {
    /// Adds `amount` to the total of (`principal`, `day`, `currency`) if the total stays at or
    /// below `limit`; returns the total before the addition, and whether it was added.
    func reserve(principal: String, day: String, currency: String, amount: Decimal, limit: Decimal) async throws(PaymentStoreError)
        -> (spentBefore: Decimal, reserved: Bool)
    /// Gives back `amount` reserved earlier (a payment that charged nothing).
    func release(principal: String, day: String, currency: String, amount: Decimal) async throws(PaymentStoreError)
    /// Registers (or replaces) the amount due on `callSID`.
    func setAmountDue(_ due: AmountDue, onCall callSID: CallSID) async throws(PaymentStoreError)
    /// The amount due on `callSID`, unless none is registered or it expired before `now`.
    func amountDue(onCall callSID: CallSID, now: Date) async throws(PaymentStoreError) -> AmountDue?
    /// Forgets the amount due on `callSID` (it was charged).
    func clearAmountDue(onCall callSID: CallSID) async throws(PaymentStoreError)
    /// Forgets the totals of days before `day` and amounts due expired by `now`; returns how many.
    func expire(before day: String, now: Date) async throws(PaymentStoreError) -> Int
}

/// The default ledger: dictionaries in an actor.
public actor InMemorySpendingLedger: SpendingLedger {
    private struct Key: Hashable {
        var principal: String, day: String, currency: String
    }
    private var totals: [Key: Decimal] = [:]
    private var due: [CallSID: AmountDue] = [:]

    public init() {}

    public func reserve(principal: String, day: String, currency: String, amount: Decimal, limit: Decimal) -> (spentBefore: Decimal, reserved: Bool) {
        let key = Key(principal: principal, day: day, currency: currency)
        let before = totals[key] ?? 0
        guard before + amount <= limit else { return (before, false) }
        totals[key] = before + amount
        return (before, true)
    }

    public func release(principal: String, day: String, currency: String, amount: Decimal) {
        let key = Key(principal: principal, day: day, currency: currency)
        totals[key] = max(0, (totals[key] ?? 0) - amount)
    }

    public func setAmountDue(_ due: AmountDue, onCall callSID: CallSID) {
        self.due[callSID] = due
    }

    public func amountDue(onCall callSID: CallSID, now: Date) -> AmountDue? {
        guard let found = due[callSID] else { return nil }
        guard found.expiresAt > now else {
            due.removeValue(forKey: callSID)
            return nil
        }
        return found
    }

    public func clearAmountDue(onCall callSID: CallSID) {
        due.removeValue(forKey: callSID)
    }

    public func expire(before day: String, now: Date) -> Int {
        let before = totals.count + due.count
        totals = totals.filter { $0.key.day >= day }
        due = due.filter { $0.value.expiresAt > now }
        return before - totals.count - due.count
    }
}

// MARK: - What a charged session remembers

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
