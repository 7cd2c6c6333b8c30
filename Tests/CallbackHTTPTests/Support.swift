import CallbackHTTP
import Foundation
import HTTPTestSupport
import Hummingbird
import Logging
import Synchronization
import TwilioPayments
import TwilioSimulator

enum Fixture {
    /// Test servers log only what matters (cancelling them at the end is not an error worth printing).
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    static let credentials = TwilioCredentials(
        accountSID: AccountSID(validated: "AC" + String(repeating: "ab", count: 16)),
        apiKeySID: APIKeySID(validated: "SK" + String(repeating: "cd", count: 16)),
        apiSecret: Secret("simulator-api-secret"), authToken: Secret("simulator-auth-token"))
    static let token = Secret("simulator-auth-token")
}

/// A sink that knows the secrets it was told and records what it was given.
final class RecordingSink: CallbackSink {
    let received = Mutex<[(String, PaymentStatusCallback)]>([])
    let known = Mutex<Set<String>>([])
    func allow(_ secret: String) { known.withLock { _ = $0.insert(secret) } }
    func forget(_ secret: String) { known.withLock { _ = $0.remove(secret) } }
    func knows(secret: String) async -> Bool { known.withLock { $0.contains(secret) } }
    func deliver(secret: String, callback: PaymentStatusCallback) async -> Bool {
        guard known.withLock({ $0.contains(secret) }) else { return false }
        received.withLock { $0.append((secret, callback)) }
        return true
    }
    var count: Int { received.withLock { $0.count } }
}

/// Runs applications on real sockets for the duration of `body`, then shuts them down gracefully
/// (``withServing(_:grace:_:)``).
func withRunning<T: Sendable>(_ apps: [any ApplicationProtocol], _ body: () async throws -> T) async throws -> T {
    try await withServing(apps, body)
}

/// Waits until `value` yields non-nil (servers report their ports asynchronously).
func eventually<T>(_ value: () -> T?, timeout: Duration = .seconds(30)) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = value() { return value }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw CancellationError()
}
