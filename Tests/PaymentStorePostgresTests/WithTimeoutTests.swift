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
