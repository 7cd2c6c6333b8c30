import PaymentsTestSupport
import Testing

@testable import PaymentStorePostgres

/// A request that never ends is answered at its deadline: what PostgresNIO does to a query
/// written to a connection that has just closed (it is never answered, and cancelling it does
/// nothing), played here by a continuation nobody resumes.
@Suite(.timeLimit(.minutes(1))) struct WithTimeoutTests {
    /// Never returns, whatever happens to its task.
    @Sendable static func never() async -> Int {
        await withUnsafeContinuation { (_: UnsafeContinuation<Int, Never>) in }
    }

    @Test func aRequestThatNeverEndsFailsAsUnreachableAtTheDeadline() async {
        await #expect {
            _ = try await withTimeout(.milliseconds(100)) { await Self.never() }
        } throws: { error in
            guard case .unreachable(let reason) = error as? PostgresStoreError else { return false }
            return reason.contains("no answer within")
        }
    }

    /// The deadline is the timeout on the given clock, not a moment earlier: on a manual clock, an
    /// answer a millisecond before it is passed on, and a request still unanswered at it fails.
    @Test func theDeadlineIsTheTimeoutOnItsClock() async throws {
        let clock = ManualClock()
        let (answers, answer) = AsyncStream<Int>.makeStream()
        let early = Task {
            try await withTimeout(.seconds(2), on: clock) { await answers.first { _ in true } ?? 0 }
        }
        #expect(await clock.sleepers(atLeast: 1, waitingUpTo: .seconds(30)))
        clock.advance(by: .seconds(2) - .milliseconds(1))
        #expect(clock.sleeperCount == 1, "not due a millisecond before the deadline")
        answer.yield(42)
        #expect(try await early.value == 42)
        #expect(clock.sleeperCount == 0, "the timer ended with the answer")

        let late = Task { try await withTimeout(.seconds(2), on: clock) { await Self.never() } }
        #expect(await clock.sleepers(atLeast: 1, waitingUpTo: .seconds(30)))
        clock.advance(by: .seconds(2) - .milliseconds(1))
        #expect(clock.sleeperCount == 1, "not due a millisecond before the deadline")
        clock.advance(by: .milliseconds(1))
        await #expect {
            _ = try await late.value
        } throws: { error in
            guard case .unreachable(let reason) = error as? PostgresStoreError else { return false }
            return reason.contains("no answer within 2.0 seconds")
        }
    }

    @Test func aCancelledCallerIsAnsweredAtOnceWhileTheRequestHangs() async {
        let caller = Task { try await withTimeout(.seconds(3600)) { await Self.never() } }
        try? await Task.sleep(for: .milliseconds(50))
        caller.cancel()
        await #expect(throws: CancellationError.self) { _ = try await caller.value }
    }

    @Test func anAnswerOrAFailureInTimeIsPassedOn() async throws {
        #expect(try await withTimeout(.seconds(5)) { 42 } == 42)
        await #expect(throws: PostgresStoreError.self) {
            _ = try await withTimeout(.seconds(5)) { () async throws -> Int in
                throw PostgresStoreError.refused(sqlState: "23505", message: "duplicate key")
            }
        }
    }
}
