import Synchronization

/// A value set once, which any number of waiters await with a deadline: what lets a tool call
/// stop waiting for a command (its deadline came, or it was cancelled) without cancelling the
/// command, which keeps running in its own task and stores its outcome.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var nextID: UInt64 = 0
        /// Waiters cancelled before they had registered.
        var expired: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// Sets the value (the first call wins) and wakes every waiter.
    func fulfil(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value once it is set; `nil` when `deadline` passes first or the waiting task is
    /// cancelled. The deadline's timer is a child task, gone when this returns.
    func value(until deadline: ContinuousClock.Instant) async -> Value? {
        if let value = state.withLock({ $0.value }) { return value }
        if deadline <= .now || Task.isCancelled { return nil }
        // One enum for both children's outcomes (a nested optional in such a race crashed the
        // optimizer of Swift 6.3.1 in release builds).
        return await withTaskGroup(of: Race.self) { group in
            group.addTask { .answered(await self.value()) }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return .deadlinePassed
            }
            let first = await group.next()
            group.cancelAll()
            if case .answered(let value)? = first { return value }
            return nil
        }
    }

    /// What ends a bounded wait first.
    private enum Race: Sendable {
        case answered(Value?)
        case deadlinePassed
    }

    /// The value once it is set; `nil` when the waiting task is cancelled first.
    private func value() async -> Value? {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        defer { state.withLock { _ = $0.expired.remove(id) } }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let settled = state.withLock { state -> Value?? in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled || state.expired.remove(id) != nil { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if case .some(let value) = settled { continuation.resume(returning: value) }
            }
        } onCancel: {
            expire(id)
        }
    }

    /// Wakes waiter `id` with `nil`, if it still waits.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            if state.value == nil { state.expired.insert(id) }
            return nil
        }
        waiter?.resume(returning: nil)
    }
}
