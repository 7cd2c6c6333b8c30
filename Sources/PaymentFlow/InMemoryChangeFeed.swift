import Foundation

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
