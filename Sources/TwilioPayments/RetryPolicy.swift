public import Foundation

/// When and how long to wait before trying a failed request again.
///
/// Retried: HTTP 429, 500, 502, 503 and 504, and connection failures. Never retried: any
/// other 4xx (the request itself is wrong). Delays grow exponentially with full jitter, are
/// capped, honour `Retry-After` within the cap, and the whole operation stays within
/// `totalBudget`.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public var maximumAttempts: Int
    public var initialDelay: Duration
    public var maximumDelay: Duration
    /// The longest a whole operation may take, retries and waits included.
    public var totalBudget: Duration

    public init(
        maximumAttempts: Int = 4, initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(3),
        totalBudget: Duration = .seconds(20)
    ) {
        self.maximumAttempts = max(1, maximumAttempts)
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.totalBudget = totalBudget
    }

    /// Never retry.
    public static let none = RetryPolicy(maximumAttempts: 1)

    /// The wait a `Retry-After` header names, in seconds: either delay-seconds (`120`) or an
    /// HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`, RFC 9110 §10.2.3), measured from `now`. A date
    /// in the past means no wait; anything else is `nil`.
    public static func retryAfterSeconds(_ header: String, now: Date) -> Double? {
        let text = header.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(text), seconds.isFinite { return max(0, seconds) }
        guard let date = TwilioDate.parseRFC2822(text) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    /// HTTP statuses worth another try.
    public static func isRetryable(status: Int) -> Bool {
        status == 429 || status == 500 || status == 502 || status == 503 || status == 504
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): a random duration up to
    /// the exponential ceiling, or `Retry-After` seconds when the server named a wait.
    public func delay(
        afterAttempt attempt: Int, retryAfterSeconds: Double? = nil,
        using generator: inout some RandomNumberGenerator
    ) -> Duration {
        if let retryAfterSeconds, retryAfterSeconds >= 0 {
            return min(maximumDelay, .milliseconds(Int64(retryAfterSeconds * 1000)))
        }
        let ceiling = min(maximumDelay, initialDelay * Int(1 << min(attempt - 1, 20)))
        let ceilingNanoseconds =
            ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard ceilingNanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...ceilingNanoseconds, using: &generator))
    }
}

/// The time a client's retries measure their budget and wait in: the process's own
/// (``ContinuousRetryClock``), or a test's that moves only when told.
public protocol RetryClock: Sendable {
    /// Time elapsed since a fixed start.
    var elapsed: Duration { get }
    /// Waits `duration` (throws when the task is cancelled).
    func sleep(for duration: Duration) async throws
}

/// Real time: `ContinuousClock` and `Task.sleep`.
public struct ContinuousRetryClock: RetryClock {
    private let start = ContinuousClock.now

    public init() {}

    public var elapsed: Duration { ContinuousClock.now - start }

    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}
