import Foundation
import Synchronization

/// The default feed: subscribers of this process. A subscriber whose stream ends is removed at
/// once, under the same lock (no task is left to do it later).
public final class InMemoryChangeFeed: PaymentChangeFeed {
    private let subscribers = Mutex<[UUID: AsyncStream<PaymentSession>.Continuation]>([:])

    public init() {}

    public func publish(_ session: PaymentSession) {
        // Yielded outside the lock: a yield may run the stream's termination handler.
        let continuations = subscribers.withLock { Array($0.values) }
        for continuation in continuations { continuation.yield(session) }
    }

    public func subscribe() -> AsyncStream<PaymentSession> {
        let (stream, continuation) = AsyncStream<PaymentSession>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    /// How many subscribe now.
    public var subscriberCount: Int { subscribers.withLock { $0.count } }
}
