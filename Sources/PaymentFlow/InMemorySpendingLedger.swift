public import Foundation
public import TwilioPayments

/// The default ledger: dictionaries in an actor.
public actor InMemorySpendingLedger: SpendingLedger {
    private struct Key: Hashable {
        var principal: String, day: String, currency: String
    }
    private var totals: [Key: Decimal] = [:]
    private var due: [CallSID: AmountDue] = [:]

    public init() {}

    public func reserve(
        principal: String, day: String, currency: String, amount: Decimal, limit: Decimal
    ) -> (spentBefore: Decimal, reserved: Bool) {
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
