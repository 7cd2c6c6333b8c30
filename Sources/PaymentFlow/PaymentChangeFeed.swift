import Foundation

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
