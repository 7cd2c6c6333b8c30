public import Foundation
public import TwilioPayments

/// The default store: dictionaries in an actor.
public actor InMemoryPaymentStore: PaymentStore {
    private var sessions: [String: PaymentSession] = [:]
    private var idBySID: [PaymentSID: String] = [:]
    private var idBySecretHash: [String: String] = [:]

    public init() {}

    public func session(_ paymentSID: PaymentSID) -> PaymentSession? {
        idBySID[paymentSID].flatMap { sessions[$0] }
    }

    public func session(id: String) -> PaymentSession? {
        sessions[id]
    }

    public func session(callbackSecretHash hash: String) -> PaymentSession? {
        idBySecretHash[hash].flatMap { sessions[$0] }
    }

    public func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) -> Bool {
        guard sessions[session.id]?.version == expectedVersion else { return false }
        if expectedVersion == nil,
            sessions.values.contains(where: { $0.callSID == session.callSID && !$0.phase.isFinished })
        {
            return false
        }
        if let previous = sessions[session.id], let sid = previous.paymentSID, sid != session.paymentSID {
            idBySID.removeValue(forKey: sid)
        }
        sessions[session.id] = session.sanitized()
        if let sid = session.paymentSID { idBySID[sid] = session.id }
        if !session.callbackSecretHash.isEmpty { idBySecretHash[session.callbackSecretHash] = session.id }
        return true
    }

    public func activeSessions() -> [PaymentSession] {
        sessions.values.filter { !$0.phase.isFinished }.sorted { $0.createdAt < $1.createdAt }
    }

    public func sessions(onCall callSID: CallSID) -> [PaymentSession] {
        sessions.values.filter { $0.callSID == callSID }.sorted { $0.createdAt > $1.createdAt }
    }

    public func expireFinished(updatedBefore date: Date) -> Int {
        let expired = sessions.values.filter { $0.phase.isFinished && $0.updatedAt < date }
        for session in expired {
            sessions.removeValue(forKey: session.id)
            if let sid = session.paymentSID { idBySID.removeValue(forKey: sid) }
            idBySecretHash.removeValue(forKey: session.callbackSecretHash)
        }
        return expired.count
    }

    /// How many sessions are stored.
    public var count: Int { sessions.count }
}
