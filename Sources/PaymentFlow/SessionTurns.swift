import Synchronization

/// One turn at a time per key, in the order asked: the coordinator applies the callbacks of one
/// session one after another, in the order they arrived, while other sessions' go on at once.
///
/// Why: callbacks run off the coordinator's actor, on whichever thread their request runs. Two
/// at once on one session would both change the same version, and the loser would read the
/// session again and retry; enough of them at once (a burst Twilio retries, a load test) could
/// spend a callback's retries and answer 503. Taking turns costs a lock and nothing else when the
/// session has no other callback under way, which is nearly always.
///
/// The turn passes straight to the next waiter, so a later arrival never overtakes one already
/// waiting. A waiter is not cancellable: it waits for its turn, then runs as it would have.
final class SessionTurns: Sendable {
    /// Keys whose turn is taken, with who waits for it next, in order.
    private let taken = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    /// Returns once it is the caller's turn for `key`; ``end(_:)`` passes it on.
    func begin(_ key: String) async {
        let free = taken.withLock { taken -> Bool in
            guard taken[key] == nil else { return false }
            taken[key] = []
            return true
        }
        if free { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // Ended meanwhile: the turn is free again, and this caller takes it.
            let now = taken.withLock { taken -> Bool in
                guard taken[key] != nil else {
                    taken[key] = []
                    return true
                }
                taken[key]?.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Passes the turn for `key` to whoever waits first, or frees it.
    func end(_ key: String) {
        let next = taken.withLock { taken -> CheckedContinuation<Void, Never>? in
            guard var waiting = taken[key] else { return nil }
            guard !waiting.isEmpty else {
                taken[key] = nil
                return nil
            }
            let first = waiting.removeFirst()
            taken[key] = waiting
            return first
        }
        next?.resume()
    }

    /// Keys whose turn is taken (tests: back to zero once every turn ended).
    var busy: Int { taken.withLock { $0.count } }

    /// Callers waiting for `key`'s turn (tests).
    func waiting(_ key: String) -> Int { taken.withLock { $0[key]?.count ?? 0 } }
}
