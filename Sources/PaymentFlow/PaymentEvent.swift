public import Foundation
public import TwilioPayments

/// Something that happened to a payment session.
public enum PaymentEvent: Sendable {
    /// Twilio created the session (201).
    case sessionCreated(PaymentSID, at: Date)
    /// The agent asked to capture an item; `idempotencyKey` is the fresh key for it (kept
    /// unless an earlier request of the same capture is still unanswered, whose key is reused).
    /// Without `restart`, asking again for the item the caller is typing, or for one already
    /// captured, is a repeat (a retried or repeated tool call): nothing changes and nothing is
    /// sent. With it, the entry starts over.
    case captureRequested(PaymentItem, at: Date, idempotencyKey: String? = nil, restart: Bool = false)
    /// Twilio accepted the capture (202); `twilioDate` is the answer's `date_updated`, by
    /// Twilio's clock, which marks where this attempt begins.
    case captureAccepted(PaymentItem, at: Date, twilioDate: Date? = nil)
    /// The agent asked to complete (charge or tokenize).
    case completeRequested(at: Date, idempotencyKey: String? = nil)
    /// Twilio accepted the completion (202); the result follows in a callback.
    case completeAccepted(at: Date)
    /// The agent asked to cancel.
    case cancelRequested(at: Date, idempotencyKey: String? = nil)
    /// Twilio accepted the cancellation (202); a cancelled session is final.
    case cancelAccepted(at: Date)
    /// A status callback arrived (already authenticated by the receiver).
    case callbackReceived(PaymentStatusCallback, at: Date)
    /// A REST call failed.
    case requestFailed(PaymentOperation, reason: String, at: Date)
    /// The call is over: Twilio reports it no longer in progress (`status` as Twilio sent it,
    /// when known), or a request failed because the call is gone.
    case callEnded(at: Date, status: String? = nil)
    /// The call's recordings were paused, resumed, or could not be (``RecordingsPause``):
    /// recorded even on a finished session, whose recordings are resumed after it ends.
    case recordingsChanged(RecordingsPause, at: Date)
}
