public import TwilioPayments

/// What a payment did to its call's recordings, when the coordinator pauses them
/// (``PaymentCoordinator`` with a ``TwilioRecordingsAPI``): PCI DSS keeps card entry out of
/// recordings, so each recording that runs when the payment starts is paused until it finishes.
/// Kept in the stored session, so whichever replica finishes the payment resumes them.
public struct RecordingsPause: Sendable, Equatable {
    /// Where the pause stands.
    public enum State: String, Sendable, CaseIterable {
        /// The recordings in ``RecordingsPause/recordings`` are paused (none ran: nothing to do).
        case paused
        /// Listing or pausing failed (``RecordingsPause/reason``); the payment goes on unless
        /// the host requires the pause. What was paused before the failure is still listed.
        case pauseFailed = "pause-failed"
        /// The payment finished and the recordings run again.
        case resumed
        /// Resuming failed (``RecordingsPause/reason``): they may still be paused.
        case resumeFailed = "resume-failed"
        /// The call ended during the payment: its recordings ended with it, nothing to resume.
        case callEnded = "call-ended"
    }

    public var state: State
    /// The recordings this payment paused (and resumes).
    public var recordings: [RecordingSID]
    /// Why listing, pausing or resuming failed, in Twilio's words (no card data ever passes here).
    public var reason: String?

    public init(state: State, recordings: [RecordingSID], reason: String? = nil) {
        self.state = state
        self.recordings = recordings
        self.reason = reason
    }
}
