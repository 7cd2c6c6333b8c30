public import Foundation
public import TwilioPayments

/// Where daily totals and amounts due live, shared by every replica: the in-memory default
/// serves one process; the PostgreSQL ledger serves many.
public protocol SpendingLedger: Sendable {
    /// Adds `amount` to the total of (`principal`, `day`, `currency`) if the total stays at or
    /// below `limit`; returns the total before the addition, and whether it was added.
    func reserve(
        principal: String, day: String, currency: String, amount: Decimal, limit: Decimal
    ) async throws(PaymentStoreError)
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
