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
    /// Every session on `callSID`, newest first.
    func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession]
    /// Forgets finished sessions last updated before `date`; returns how many.
    func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int
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
           sessions.values.contains(where: { $0.callSID == session.callSID && !$0.phase.isFinished }) {
            return false
        }
        if let previous = sessions[session.id], let sid = previous.paymentSID, sid != session.paymentSID { idBySID.removeValue(forKey: sid) }
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

/// Carries every change to whoever waits: status notifications, listen streams, long polls.
/// In one process the in-memory feed hands over the new snapshot; across replicas a shared
/// implementation (PostgreSQL LISTEN/NOTIFY) announces the id and version and its listeners
/// re-read the store.
public protocol PaymentChangeFeed: Sendable {
    /// Tells every subscriber that `session` changed (it has just been stored).
    func publish(_ session: PaymentSession) async
    /// Every change from now on. A shared feed re-reads the store for each announcement, so a
    /// subscriber may skip versions (it gets the newest) or, rarely, see one twice: consumers
    /// compare ``PaymentSession/version``.
    func subscribe() async -> AsyncStream<PaymentSession>
}

/// The default feed: subscribers of this process.
public actor InMemoryChangeFeed: PaymentChangeFeed {
    private var subscribers: [UUID: AsyncStream<PaymentSession>.Continuation] = [:]

    public init() {}

    public func publish(_ session: PaymentSession) {
        for continuation in subscribers.values { continuation.yield(session) }
    }

    public func subscribe() -> AsyncStream<PaymentSession> {
        let (stream, continuation) = AsyncStream<PaymentSession>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = UUID()
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.remove(id) }
        }
        return stream
    }

    private func remove(_ id: UUID) {
        subscribers.removeValue(forKey: id)
    }

}

/// Gives each session its StatusCallback URL, carrying an unguessable path secret. The secret
/// itself is kept nowhere: the store holds its hash, which is how a callback finds its session.
public protocol CallbackURLProvider: Sendable {
    /// The URL Twilio should call for the session with `secret`.
    func callbackURL(secret: String) async throws -> String
}

/// Builds callback URLs as `<base>/<secret>`, for a public base URL known up front.
public struct StaticCallbackURLProvider: CallbackURLProvider {
    public let baseURL: String

    public init(baseURL: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }

    public func callbackURL(secret: String) -> String {
        "\(baseURL)/\(secret)"
    }
}

/// 128 random bits as 32 hex digits, for callback path secrets.
public enum PathSecret {
    public static func make() -> String {
        Hex.random()
    }
}
