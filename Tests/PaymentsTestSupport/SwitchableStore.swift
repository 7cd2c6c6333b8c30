public import Foundation
public import PaymentFlow
import Synchronization
public import TwilioPayments

/// An in-memory store that a test can switch off, as a database that goes away.
public final class SwitchableStore: PaymentStore {
    public init() {}

    private let base = InMemoryPaymentStore()
    private let away = Mutex(false)

    public func switchOff() { away.withLock { $0 = true } }
    public func switchOn() { away.withLock { $0 = false } }

    private func check() throws(PaymentStoreError) {
        if away.withLock({ $0 }) { throw PaymentStoreError("the test switched the store off") }
    }

    public func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
        try check()
        return await base.session(paymentSID)
    }
    public func session(id: String) async throws(PaymentStoreError) -> PaymentSession? {
        try check()
        return await base.session(id: id)
    }
    public func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
        try check()
        return await base.session(callbackSecretHash: hash)
    }
    public func compareAndSet(
        _ session: PaymentSession, expectedVersion: UInt64?
    ) async throws(PaymentStoreError) -> Bool {
        try check()
        return await base.compareAndSet(session, expectedVersion: expectedVersion)
    }
    public func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] {
        try check()
        return await base.activeSessions()
    }
    public func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
        try check()
        return await base.sessions(onCall: callSID)
    }
    public func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
        try check()
        return await base.expireFinished(updatedBefore: date)
    }
}
