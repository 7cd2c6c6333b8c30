public import Foundation
public import TwilioPayments

/// Where one item stands.
public enum ItemState: Sendable, Equatable {
    /// Not asked for yet.
    case notRequested
    /// Capture asked of Twilio; no digit reported yet.
    case requested
    /// Digits arriving; the masked value so far, as Twilio reports it.
    case capturing(masked: String?)
    /// Done; the masked (or, for dates and postal codes, clear) value Twilio reported.
    case captured(masked: String?)
    /// The last attempt failed.
    case failed(PaymentErrorType)

    /// Whether capture is under way (asked for or digits arriving).
    public var isInProgress: Bool {
        switch self {
        case .requested, .capturing: return true
        default: return false
        }
    }

    public var isCaptured: Bool {
        if case .captured = self { return true }
        return false
    }

    /// The state without its details, as status JSON spells it (`allCases` for schemas).
    public enum Kind: String, Sendable, CaseIterable {
        case notRequested = "not-requested", requested, capturing, captured, failed
    }

    /// The state without its details.
    public var kind: Kind {
        switch self {
        case .notRequested: return .notRequested
        case .requested: return .requested
        case .capturing: return .capturing
        case .captured: return .captured
        case .failed: return .failed
        }
    }
}

/// One item's state plus its history.
public struct ItemProgress: Sendable, Equatable {
    public var state: ItemState = .notRequested
    /// Capture attempts that failed (an `ErrorType` was reported).
    public var failedAttempts: Int = 0
    /// Capture requests made.
    public var requests: Int = 0
    /// When, by Twilio's clock, the current attempt began: the `date_updated` of Twilio's answer
    /// to the capture request (whole seconds), raised by the `DateUpdated` of the capture-time
    /// callback. A callback for this item stamped earlier belongs to an earlier attempt and is
    /// ignored, so a late error for attempt N never fails attempt N+1.
    public var attemptStart: Date?
    /// The `PartialResult` of the latest callback applied to this item (`nil` when it had none).
    public var lastPartialResult: Bool?

    public init() {}
}
