public import Foundation
public import TwilioPayments

/// Where payment sessions live between events. Implementations must keep only masked values:
/// pass every session through ``PaymentSession/sanitized()`` before storing it.
///
/// The in-memory default is ``InMemoryPaymentStore``; a PostgreSQL store for several replicas
/// can conform later without touching the flow.
public protocol PaymentStore: Sendable {
    /// The session with this payment SID.
    func session(_ paymentSID: PaymentSID) async -> PaymentSession?
    /// Stores `session` if the stored version is `expectedVersion` (`nil`: no session stored
    /// yet). Returns whether it was stored.
    func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) async -> Bool
    /// Every session that has not finished.
    func activeSessions() async -> [PaymentSession]
    /// Every session on `callSID`, newest first.
    func sessions(onCall callSID: CallSID) async -> [PaymentSession]
    /// Forgets finished sessions last updated before `date`; returns how many.
    func expireFinished(updatedBefore date: Date) async -> Int
}

/// The default store: a dictionary in an actor.
public actor InMemoryPaymentStore: PaymentStore {
    private var sessions: [PaymentSID: PaymentSession] = [:]

    public init() {}

    public func session(_ paymentSID: PaymentSID) -> PaymentSession? {
        sessions[paymentSID]
    }

    public func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) -> Bool {
        guard let sid = session.paymentSID else { return false }
        guard sessions[sid]?.version == expectedVersion else { return false }
        sessions[sid] = session.sanitized()
        return true
    }

    public func activeSessions() -> [PaymentSession] {
        sessions.values.filter { !$0.phase.isFinished }.sorted { $0.createdAt < $1.createdAt }
    }

    public func sessions(onCall callSID: CallSID) -> [PaymentSession] {
        sessions.values.filter { $0.callSID == callSID }.sorted { $0.createdAt > $1.createdAt }
    }

    public func expireFinished(updatedBefore date: Date) -> Int {
        let expired = sessions.filter { $0.value.phase.isFinished && $0.value.updatedAt < date }.map(\.key)
        for sid in expired { sessions.removeValue(forKey: sid) }
        return expired.count
    }

    /// How many sessions are stored.
    public var count: Int { sessions.count }
}

/// Gives each session its StatusCallback URL, carrying an unguessable path secret that the
/// callback receiver checks (in constant time) before anything reaches the flow.
public protocol CallbackURLProvider: Sendable {
    /// The URL Twilio should call for the session with `secret`.
    func callbackURL(secret: String) async throws -> String
    /// The session with `secret` is gone; its URL need not be accepted any longer.
    func retire(secret: String) async
}

extension CallbackURLProvider {
    public func retire(secret: String) async {}
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
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}
