public import TwilioPayments

/// How a coordinator keeps card entry out of its calls' recordings (opt-in): at a start, each
/// recording of the call that runs is paused (`PauseBehavior=skip`) before Twilio is asked to
/// create the payment, so nothing the caller types is recorded; when the payment finishes,
/// whatever the outcome, they are resumed, by whichever replica stores the finish. A call that
/// ends takes its recordings with it: nothing is resumed then.
public struct RecordingPausing: Sendable {
    /// Twilio's Recordings API (``TwilioPaymentsClient`` is one).
    public var api: any TwilioRecordingsAPI
    /// Whether a start whose recordings could not be paused is refused (nothing is created and
    /// what was paused is resumed) rather than going on with the failure in its status.
    public var required: Bool
    /// Told of every failure to list, pause or resume, with a sentence free of secrets (the
    /// host logs it; the session's status shows it too).
    public var onFailure: @Sendable (_ reason: String, _ session: PaymentSession) -> Void

    public init(
        api: any TwilioRecordingsAPI, required: Bool = false,
        onFailure: @escaping @Sendable (_ reason: String, _ session: PaymentSession) -> Void = { _, _ in }
    ) {
        self.api = api
        self.required = required
        self.onFailure = onFailure
    }
}
