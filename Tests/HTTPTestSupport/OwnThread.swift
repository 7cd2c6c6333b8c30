import Foundation

/// Runs blocking `body` on a thread of its own and returns what it returns.
///
/// Not on Dispatch's global queue: its threads are few (one per core when nothing blocks, and
/// more only after a while), and what else needs them waits meanwhile — URLSession's callbacks
/// among them. Tests that waited there for seconds (a socket read of a slow-client test, a
/// cluster's `initdb`) left other tests' loopback requests to time out (CI, 2026-12-05).
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}
