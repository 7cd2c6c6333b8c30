import Foundation
import Synchronization

/// A value that one part of the system announces once (a bound port, a public URL, the
/// coordinator) and others wait for, within a bound; or the reason it never will come.
/// Waiters are resumed by the announcement itself, never by polling.
final class Announcement<Value: Sendable>: Sendable {
    private struct State {
        var outcome: Result<Value, FlowStartFailure>?
        var waiters: [UUID: CheckedContinuation<Result<Value, FlowStartFailure>, Never>] = [:]
    }

    private let state = Mutex(State())

    /// The value, if it has been announced.
    var value: Value? { state.withLock { try? $0.outcome?.get() } }

    func announce(_ value: Value) { settle(.success(value)) }

    func fail(_ failure: FlowStartFailure) { settle(.failure(failure)) }

    private func settle(_ result: Result<Value, FlowStartFailure>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Result<Value, FlowStartFailure>, Never>] in
            guard state.outcome == nil else { return [] }
            state.outcome = result
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// The value, waiting up to `timeout` (or until the task is cancelled) for it. The timer is
    /// a child task, gone when this returns.
    func wait(upTo timeout: Duration) async -> Result<Value, FlowStartFailure> {
        if let outcome = state.withLock({ $0.outcome }) { return outcome }
        if timeout <= .zero { return .failure(.notYet) }
        // One enum for both children's outcomes: a nested optional here crashed the optimizer
        // of Swift 6.3.1 in release builds (Mem2Reg), so the race says what happened in words.
        return await withTaskGroup(of: Race.self) { group in
            group.addTask { .settled(await self.wait()) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .timerFired
            }
            let first = await group.next()
            group.cancelAll()
            if case .settled(let outcome)? = first { return outcome }
            return .failure(Task.isCancelled ? .cancelled : .notYet)
        }
    }

    /// What ends a bounded wait first.
    private enum Race: Sendable {
        case settled(Result<Value, FlowStartFailure>)
        case timerFired
    }

    /// The value, waiting until it comes or the task is cancelled.
    private func wait() async -> Result<Value, FlowStartFailure> {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let settled = state.withLock { state -> Result<Value, FlowStartFailure>? in
                    if let outcome = state.outcome { return outcome }
                    state.waiters[id] = continuation
                    return nil
                }
                if let settled {
                    continuation.resume(returning: settled)
                    return
                }
                // Registered: only now can a cancellation find this waiter, so a cancellation
                // that came before registration is honoured here.
                if Task.isCancelled { give(up: id, .cancelled) }
            }
        } onCancel: {
            give(up: id, .cancelled)
        }
    }

    /// The failure this part announced, if it failed to start (not a waiter's timeout).
    var startFailure: PaymentsStartError? {
        state.withLock { state in
            if case .failure(.failed(let error)) = state.outcome { return error }
            return nil
        }
    }

    private func give(up id: UUID, _ failure: FlowStartFailure) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: .failure(failure))
    }
}

/// Why a part of the system is not available.
enum FlowStartFailure: Error, Sendable {
    /// Not yet, within the time asked.
    case notYet
    /// The waiting task was cancelled (the system is shutting down).
    case cancelled
    /// It never will be: this part failed to start.
    case failed(PaymentsStartError)
}

/// What must come up before a system is ready, and whether it all did: each part reports once;
/// ``done`` is announced when the last one has, or fails with the first part's failure.
final class Startup: Sendable {
    enum Part: Hashable, Sendable {
        /// The in-process simulator listens.
        case simulator
        /// The system's own callback server listens.
        case listener
        /// The public URL is known (a tunnel's, a loopback port's, the host's).
        case publicURL
    }

    /// Announced once every part is up, or failed with why one is not.
    let done = Announcement<Void>()
    private let waiting: Mutex<Set<Part>>

    init(waitingFor parts: Set<Part>) {
        waiting = Mutex(parts)
        if parts.isEmpty { done.announce(()) }
    }

    /// `part` is up.
    func reached(_ part: Part) {
        let all = waiting.withLock { waiting -> Bool in
            guard waiting.remove(part) != nil else { return false }
            return waiting.isEmpty
        }
        if all { done.announce(()) }
    }

    /// A part could not start (or the system stopped first): readiness ends with `error`,
    /// unless it had come already or another failure came first.
    func fail(_ error: PaymentsStartError) {
        done.fail(.failed(error))
    }

    /// Why the system could not start, if it could not.
    var failure: PaymentsStartError? { done.startFailure }
}
