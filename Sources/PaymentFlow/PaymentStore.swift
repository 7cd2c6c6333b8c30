public import Foundation
public import TwilioPayments

/// Where payment sessions live between events: the one shared truth when several replicas
/// serve the same calls. Implementations must keep only masked values (pass every session
/// through ``PaymentSession/sanitized()``), and must make ``compareAndSet(_:expectedVersion:)``
/// atomic: it is how concurrent writers, in one process or many, never lose an update.
///
/// Sessions are keyed by ``PaymentSession/id`` (known before Twilio answers) and can be found
/// by payment SID and by the hash of their callback secret. The in-memory default is
/// ``InMemoryPaymentStore``; a PostgreSQL store fills the same protocol.
public protocol PaymentStore: Sendable {
    /// The session with this payment SID.
    func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession?
    /// The session with this id.
    func session(id: String) async throws(PaymentStoreError) -> PaymentSession?
    /// The session whose callback secret hashes to `hash` (``CallbackSecretHash``).
    func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession?
    /// Stores `session` if the stored version is `expectedVersion` (`nil`: no session with this
    /// id stored yet). A new session is refused while another unfinished session exists on the
    /// same call: one payment per call, across every replica. Returns whether it was stored;
    /// throws only when the store could not be asked (then nothing was stored).
    func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) async throws(PaymentStoreError) -> Bool
    /// Every session that has not finished.
    func activeSessions() async throws(PaymentStoreError) -> [PaymentSession]
    /// Every session that has not finished and was last changed before `date`: what the
    /// maintenance sweeps (stranded starts, silent hang-ups) look at, without copying the
    /// sessions that changed since. The default filters ``activeSessions()``.
    func activeSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession]
    /// Every session still ``PaymentPhase/starting`` and last changed before `date`, oldest
    /// first: the stranded-start sweep's candidates, which every replica looks for every few
    /// seconds while all but a few of the live sessions are past that phase. The default filters
    /// ``activeSessions(updatedBefore:)``; a store should answer without reading the others.
    func startingSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession]
    /// What the silent-call sweep needs of every unfinished session last changed before `date`
    /// (``IdleSession``: its keys and when it changed, not the session), least recently changed
    /// first. The default maps ``activeSessions(updatedBefore:)``; a store should answer without
    /// reading the sessions themselves.
    func idleSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [IdleSession]
    /// Every session on `callSID`, newest first.
    func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession]
    /// Forgets finished sessions last updated before `date`; returns how many.
    func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int
}

extension PaymentStore {
    public func activeSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession] {
        try await activeSessions().filter { $0.updatedAt < date }
    }

    public func startingSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession] {
        try await activeSessions(updatedBefore: date).filter { $0.phase == .starting }
    }

    public func idleSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [IdleSession] {
        try await activeSessions(updatedBefore: date).map(IdleSession.init).sorted { $0.updatedAt < $1.updatedAt }
    }
}

/// An unfinished session as the silent-call sweep sees it (``PaymentStore/idleSessions(updatedBefore:)``):
/// which call to ask Twilio about, and which session to end if that call is over. A few dozen
/// bytes where the session is hundreds, and a database reads it from its columns, without
/// decoding the session's snapshot.
public struct IdleSession: Sendable, Equatable {
    /// The session's id (``PaymentSession/id``).
    public var id: String
    /// Its payment SID, once Twilio created it.
    public var paymentSID: PaymentSID?
    /// The call it belongs to.
    public var callSID: CallSID
    /// When it last changed.
    public var updatedAt: Date

    public init(id: String, paymentSID: PaymentSID?, callSID: CallSID, updatedAt: Date) {
        self.id = id
        self.paymentSID = paymentSID
        self.callSID = callSID
        self.updatedAt = updatedAt
    }

    /// What the sweep needs of `session`.
    public init(_ session: PaymentSession) {
        self.init(
            id: session.id, paymentSID: session.paymentSID, callSID: session.callSID, updatedAt: session.updatedAt)
    }
}

/// Why a store could not answer: it is out of reach (a database restarting, a network
/// partition) or answered with something it cannot read. Nothing was changed; the request is
/// safe to retry once the store is back.
public struct PaymentStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A sentence for operators, free of payment data and secrets.
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
