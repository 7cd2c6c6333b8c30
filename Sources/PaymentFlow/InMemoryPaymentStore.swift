public import Foundation
public import TwilioPayments

/// The default store: dictionaries in an actor.
public actor InMemoryPaymentStore: PaymentStore {
    /// Each session boxed: a dictionary keeps its empty buckets at the size of a reference, not
    /// of a whole session (536 bytes inline), and readers share the box.
    private var sessions: [String: SessionBox] = [:]
    private var idBySID: [PaymentSID: String] = [:]
    private var idBySecretHash: [String: String] = [:]
    /// The unfinished session on each call (one at most): a new session's check need not read
    /// every session.
    private var unfinishedOnCall: [CallSID: String] = [:]

    public init() {}

    public func session(_ paymentSID: PaymentSID) -> PaymentSession? {
        idBySID[paymentSID].flatMap { sessions[$0]?.session }
    }

    public func session(id: String) -> PaymentSession? {
        sessions[id]?.session
    }

    public func session(callbackSecretHash hash: String) -> PaymentSession? {
        idBySecretHash[hash].flatMap { sessions[$0]?.session }
    }

    public func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) -> Bool {
        guard sessions[session.id]?.session.version == expectedVersion else { return false }
        if expectedVersion == nil, let other = unfinishedOnCall[session.callSID], other != session.id,
            sessions[other].map({ !$0.session.phase.isFinished }) == true
        {
            return false
        }
        if let previous = sessions[session.id]?.session, let sid = previous.paymentSID, sid != session.paymentSID {
            idBySID.removeValue(forKey: sid)
        }
        sessions[session.id] = SessionBox(session.sanitized())
        if let sid = session.paymentSID { idBySID[sid] = session.id }
        if !session.callbackSecretHash.isEmpty { idBySecretHash[session.callbackSecretHash] = session.id }
        if !session.phase.isFinished {
            unfinishedOnCall[session.callSID] = session.id
        } else if unfinishedOnCall[session.callSID] == session.id {
            unfinishedOnCall.removeValue(forKey: session.callSID)
        }
        return true
    }

    public func activeSessions() -> [PaymentSession] {
        unfinished { _ in true }
    }

    public func activeSessions(updatedBefore date: Date) -> [PaymentSession] {
        unfinished { $0.updatedAt < date }
    }

    public func startingSessions(updatedBefore date: Date) -> [PaymentSession] {
        unfinished { $0.phase == .starting && $0.updatedAt < date }
    }

    public func idleSessions(updatedBefore date: Date) -> [IdleSession] {
        var idle: [IdleSession] = []
        for box in sessions.values where !box.session.phase.isFinished && box.session.updatedAt < date {
            idle.append(IdleSession(box.session))
        }
        idle.sort { $0.updatedAt < $1.updatedAt }
        return idle
    }

    /// The unfinished sessions that `include` takes, oldest first, copied once.
    private func unfinished(_ include: (PaymentSession) -> Bool) -> [PaymentSession] {
        var active: [PaymentSession] = []
        for box in sessions.values where !box.session.phase.isFinished && include(box.session) {
            active.append(box.session)
        }
        active.sort { $0.createdAt < $1.createdAt }
        return active
    }

    public func sessions(onCall callSID: CallSID) -> [PaymentSession] {
        sessions.values.lazy.map(\.session).filter { $0.callSID == callSID }.sorted { $0.createdAt > $1.createdAt }
    }

    public func expireFinished(updatedBefore date: Date) -> Int {
        let expired = Array(sessions.values.lazy.map(\.session).filter { $0.phase.isFinished && $0.updatedAt < date })
        for session in expired {
            sessions.removeValue(forKey: session.id)
            if let sid = session.paymentSID { idBySID.removeValue(forKey: sid) }
            idBySecretHash.removeValue(forKey: session.callbackSecretHash)
            if unfinishedOnCall[session.callSID] == session.id { unfinishedOnCall.removeValue(forKey: session.callSID) }
        }
        return expired.count
    }

    /// How many sessions are stored.
    public var count: Int { sessions.count }
}

/// One stored session behind a reference (``InMemoryPaymentStore``, the published snapshot).
final class SessionBox: Sendable {
    let session: PaymentSession

    init(_ session: PaymentSession) {
        self.session = session
    }
}
