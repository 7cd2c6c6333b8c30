/// Where a host finds the coordinator: at once (a coordinator is its own source), or once the
/// system that assembles it is running (its callback server bound, its public URL known).
public protocol PaymentCoordinatorSource: Sendable {
    /// The coordinator, waiting up to `timeout` for it to be ready; `.zero` asks without waiting.
    ///
    /// Throws ``FlowError/callbackUnavailable(_:)`` when it is not ready in time, or never will be
    /// (a part of the system failed to start; the reason says which).
    func coordinator(waitingUpTo timeout: Duration) async throws(FlowError) -> PaymentCoordinator
}

extension PaymentCoordinator: PaymentCoordinatorSource {
    public nonisolated func coordinator(waitingUpTo timeout: Duration) async throws(FlowError) -> PaymentCoordinator {
        self
    }
}
