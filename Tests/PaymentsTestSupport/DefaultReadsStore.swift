public import Foundation
public import PaymentFlow
import Synchronization
public import TwilioPayments

/// A store that forwards only what ``PaymentStore`` requires of every store and leaves the
/// sweeps' reads (`activeSessions(updatedBefore:)`, `startingSessions(updatedBefore:)`,
/// `idleSessions(updatedBefore:)`) to the protocol's defaults, derived from `activeSessions()`:
/// the oracle a store's own narrower queries are compared with. It counts the requests it
/// forwards.
public final class DefaultReadsStore: PaymentStore {
    private let base: any PaymentStore
    private let forwarded = Atomic<Int>(0)

    public init(_ base: any PaymentStore) { self.base = base }

    /// Every request forwarded so far.
    public var total: Int { forwarded.load(ordering: .relaxed) }

    private func counted() { forwarded.add(1, ordering: .relaxed) }

    public func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
        counted()
        return try await base.session(paymentSID)
    }
    public func session(id: String) async throws(PaymentStoreError) -> PaymentSession? {
        counted()
        return try await base.session(id: id)
    }
    public func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
        counted()
        return try await base.session(callbackSecretHash: hash)
    }
    public func compareAndSet(
        _ session: PaymentSession, expectedVersion: UInt64?
    ) async throws(PaymentStoreError) -> Bool {
        counted()
        return try await base.compareAndSet(session, expectedVersion: expectedVersion)
    }
    public func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] {
        counted()
        return try await base.activeSessions()
    }
    public func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
        counted()
        return try await base.sessions(onCall: callSID)
    }
    public func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
        counted()
        return try await base.expireFinished(updatedBefore: date)
    }
}
