import Synchronization

/// What the simulator does on its own — the simulated callers' typing, the callbacks' delivery —
/// as children of ``TwilioSimulator/runCallers()`` while it runs, so that stopping it stops them.
/// A simulator whose callers are never run (a test that drives it alone) starts each as a task
/// of its own, as before.
final class SimulatorWork: Sendable {
    typealias Job = @Sendable () async -> Void

    private enum Mode {
        case unstarted
        case running(AsyncStream<Job>.Continuation)
        case stopped
    }

    private let mode = Mutex(Mode.unstarted)

    /// Runs every job given to ``spawn(_:)`` as a child until the calling task is cancelled; then
    /// cancels them, waits for them to end, and refuses later ones.
    func run() async {
        let (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
        let started = mode.withLock { mode -> Bool in
            guard case .unstarted = mode else { return false }
            mode = .running(continuation)
            return true
        }
        guard started else { return }
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for await job in jobs { group.addTask { await job() } }
                group.cancelAll()
            }
        } onCancel: {
            continuation.finish()
        }
        mode.withLock { $0 = .stopped }
    }

    /// Runs `job`: as a child of ``run()`` while it runs, not at all once it has stopped, and as
    /// a task of its own if it never ran.
    func spawn(_ job: @escaping Job) {
        let running = mode.withLock { mode -> AsyncStream<Job>.Continuation?? in
            switch mode {
            case .unstarted: return .some(nil)
            case .running(let continuation): return .some(continuation)
            case .stopped: return nil
            }
        }
        switch running {
        case .some(.some(let continuation)):
            if case .terminated = continuation.yield(job) { return }
        case .some(.none):
            Task { await job() }
        case .none:
            return
        }
    }
}

/// One simulated caller's typing of one item, which a new request, a cancellation or a hang-up
/// stops.
final class Typing: Sendable {
    private let cancelled = Atomic(false)

    func cancel() { cancelled.store(true, ordering: .relaxed) }

    /// Whether it was stopped, or the simulator's callers were.
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) || Task.isCancelled }
}
