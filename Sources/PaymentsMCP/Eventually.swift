public import PaymentFlow
import Foundation

/// A value that becomes available later (the coordinator, once the callback server and
/// tunnel are up), or a reason it never will. Tool calls wait for it within a bound.
public actor Eventually<Value: Sendable> {
    private var outcome: Result<Value, FlowError>?
    private var waiters: [UUID: CheckedContinuation<Result<Value, FlowError>, Never>] = [:]

    public init() {}

    public func resolve(_ value: Value) { settle(.success(value)) }

    /// How many callers wait for the value now.
    public var waitingCount: Int { waiters.count }

    public func fail(_ error: FlowError) { settle(.failure(error)) }

    private func settle(_ result: Result<Value, FlowError>) {
        guard outcome == nil else { return }
        outcome = result
        for waiter in waiters.values { waiter.resume(returning: result) }
        waiters.removeAll()
    }

    /// The value, waiting up to `timeout` for it.
    public func get(timeout: Duration) async throws(FlowError) -> Value {
        if let outcome { return try outcome.get() }
        let id = UUID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.timeOut(id)
        }
        defer { timer.cancel() }
        let result = await withCheckedContinuation { waiters[id] = $0 }
        return try result.get()
    }

    private func timeOut(_ id: UUID) {
        waiters.removeValue(forKey: id)?.resume(returning: .failure(
            .callbackUnavailable("the callback server is still starting; try again in a moment")))
    }
}
