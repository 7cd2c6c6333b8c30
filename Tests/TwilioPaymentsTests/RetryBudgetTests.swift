import Foundation
import Synchronization
import Testing
@testable import TwilioPayments

/// The retry budget with a fake clock (issue 31): time passes only when the client waits or a
/// fake Twilio "takes" it, so "stops on time" is exact, not a stopwatch.
struct RetryBudgetTests {
    /// Moves only when slept on or advanced, and keeps every wait.
    final class FakeClock: RetryClock {
        private let state = Mutex((elapsed: Duration.zero, waits: [Duration]()))
        var elapsed: Duration { state.withLock { $0.elapsed } }
        var waits: [Duration] { state.withLock { $0.waits } }
        func advance(_ duration: Duration) { state.withLock { $0.elapsed += duration } }
        func sleep(for duration: Duration) async throws {
            state.withLock {
                $0.elapsed += duration
                $0.waits.append(duration)
            }
        }
    }

    /// A Twilio that answers every attempt the same way after `latency` (or, when the attempt's
    /// timeout is shorter, times out at it), on the fake clock; keeps each attempt's timeout.
    final class SlowTwilio: HTTPTransport {
        let clock: FakeClock
        let latency: Duration
        let answer: HTTPResponse
        let timeouts = Mutex<[Duration]>([])

        init(clock: FakeClock, latency: Duration, answer: HTTPResponse) {
            self.clock = clock
            self.latency = latency
            self.answer = answer
        }

        func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
            timeouts.withLock { $0.append(request.timeout) }
            guard latency <= request.timeout else {
                clock.advance(request.timeout)
                throw TransportFailure("timed out", isRetryable: true)
            }
            clock.advance(latency)
            return answer
        }
    }

    func client(
        _ transport: SlowTwilio, policy: RetryPolicy, timeout: Duration = .seconds(15)
    ) throws
        -> TwilioPaymentsClient
    {
        try TwilioPaymentsClient(
            credentials: Fixture.credentials, retryPolicy: policy, requestTimeout: timeout, transport: transport,
            retryClock: transport.clock)
    }

    @Test func retryAfterIsWaitedAndTheBudgetEndsTheRetries() async throws {
        let clock = FakeClock()
        let twilio = SlowTwilio(
            clock: clock, latency: .zero,
            answer: HTTPResponse(status: 429, headers: ["retry-after": "5"], body: Data(#"{"code":20429}"#.utf8)))
        let policy = RetryPolicy(
            maximumAttempts: 100, initialDelay: .seconds(1), maximumDelay: .seconds(8), totalBudget: .seconds(20))
        await #expect(throws: TwilioError.self) { try await client(twilio, policy: policy).fetchCall(Fixture.call) }
        // Waits of 5 s at 0, 5 and 10 s; at 15 s another 5 would reach the 20 s budget: stop.
        #expect(clock.waits == [.seconds(5), .seconds(5), .seconds(5)])
        #expect(twilio.timeouts.withLock { $0.count } == 4)
        #expect(clock.elapsed == .seconds(15))
    }

    @Test func noAttemptOutlastsTheBudget() async throws {
        let clock = FakeClock()
        // Twilio hangs for 12 s on every attempt; each attempt may take 15 s.
        let twilio = SlowTwilio(
            clock: clock, latency: .seconds(12), answer: HTTPResponse(status: 200, headers: [:], body: Data()))
        let policy = RetryPolicy(
            maximumAttempts: 10, initialDelay: .seconds(1), maximumDelay: .seconds(1), totalBudget: .seconds(20))
        do {
            _ = try await client(twilio, policy: policy, timeout: .seconds(10)).fetchCall(Fixture.call)
            Issue.record("no error")
        } catch {
            guard let error = error as? TwilioError, case .transport(_, let attempts) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(attempts == 2, "\(error)")
        }
        // The first attempt times out at 10 s; after a wait of at most 1 s, the second gets only
        // what is left of the 20 s, and the operation ends on the budget, not past it.
        let timeouts = twilio.timeouts.withLock { $0 }
        #expect(timeouts.first == .seconds(10) && timeouts.count == 2)
        #expect(timeouts[1] < .seconds(10) && timeouts[1] == .seconds(20) - .seconds(10) - clock.waits[0])
        #expect(clock.elapsed == .seconds(20))
    }
}
