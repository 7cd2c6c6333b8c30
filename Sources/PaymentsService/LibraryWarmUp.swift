import Dispatch
public import ServiceLifecycle
import Synchronization

/// Loads a library the host otherwise loads on first use (the server executable's libcurl) a
/// second after the payments system is up, off MCP's path: a machine without it stops the
/// server at start-up with a message that says what to install, not in the middle of a payment.
public struct LibraryWarmUp: Service, CustomStringConvertible {
    public var description: String { "\(name)-warm-up" }
    let name: String
    let payments: PaymentsSystem
    /// Loads the library on the calling thread (which may block); `nil` when loaded, else why not.
    let load: @Sendable () -> String?

    /// Why the library could not be loaded.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads `name` with `load` once `payments` is up.
    public init(name: String, payments: PaymentsSystem, load: @escaping @Sendable () -> String?) {
        self.name = name
        self.payments = payments
        self.load = load
    }

    public func run() async throws {
        _ = try? await cancelWhenGracefulShutdown { try await payments.ready(waitingUpTo: .seconds(3600)) }
        // A second later (a client that only asks what the server offers, or leaves at once,
        // never waits for a load: dlopen holds the loader's lock, which exit needs too), unless
        // a Twilio request has loaded it by then. dlopen cannot be interrupted: it runs on a
        // thread of its own, and a shutdown that comes first does not wait for it.
        guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: .seconds(1)) })) != nil else { return }
        let outcome = Outcome()
        let settled = await withGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                guard outcome.wait(continuation) else { return } // shut down already: no load
                DispatchQueue.global(qos: .utility).async { [load] in
                    outcome.settle(load().map(Settlement.missing) ?? .loaded)
                }
            }
        } onGracefulShutdown: {
            outcome.settle(.shutDown)
        }
        if case .missing(let reason) = settled { throw Missing(description: reason) }
        try? await gracefulShutdown()
    }

    /// How the wait for the load ended.
    enum Settlement: Sendable {
        case loaded
        case missing(String)
        case shutDown
    }

    /// Whichever comes first, the load's result or a shutdown, resumes the wait, once.
    final class Outcome: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<Settlement, Never>?, value: Settlement?)>(
            (nil, nil))

        /// Waits with `continuation`; `false` if the outcome was already settled (it is then
        /// resumed at once).
        func wait(_ continuation: CheckedContinuation<Settlement, Never>) -> Bool {
            let settled = state.withLock { state -> Settlement? in
                if let value = state.value { return value }
                state.continuation = continuation
                return nil
            }
            guard let settled else { return true }
            continuation.resume(returning: settled)
            return false
        }

        func settle(_ value: Settlement) {
            let waiting = state.withLock { state -> CheckedContinuation<Settlement, Never>? in
                guard state.value == nil else { return nil }
                state.value = value
                defer { state.continuation = nil }
                return state.continuation
            }
            waiting?.resume(returning: value)
        }
    }
}
