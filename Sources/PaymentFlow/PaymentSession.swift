public import Foundation
public import TwilioPayments

/// How a session ended well.
public struct PaymentOutcome: Sendable, Equatable {
    public var result: PaymentResult
    /// The charge's confirmation code (charges).
    public var confirmationCode: String?
    /// The token (tokenization).
    public var token: String?
    public var profileID: String?

    public init(result: PaymentResult, confirmationCode: String? = nil, token: String? = nil, profileID: String? = nil)
    {
        self.result = result
        self.confirmationCode = confirmationCode
        self.token = token
        self.profileID = profileID
    }
}

/// Why a session ended badly.
public struct PaymentFailure: Sendable, Equatable, CustomStringConvertible {
    /// Twilio's `Result`, when the failure came in a callback.
    public var result: PaymentResult?
    /// `PaymentError` from the callback.
    public var paymentError: String?
    /// `PayErrorCode` (640xx).
    public var payErrorCode: Int?
    /// `ConnectorError` from the gateway.
    public var connectorError: String?
    /// A plain sentence.
    public var reason: String

    public init(
        result: PaymentResult? = nil, paymentError: String? = nil, payErrorCode: Int? = nil,
        connectorError: String? = nil,
        reason: String
    ) {
        self.result = result
        self.paymentError = paymentError
        self.payErrorCode = payErrorCode
        self.connectorError = connectorError
        self.reason = reason
    }

    public var description: String { reason }
}

/// The lifecycle of a session.
public enum PaymentPhase: Sendable, Equatable {
    /// Create sent to Twilio; no payment SID yet.
    case starting
    /// Open: items can be captured. `current` is the item being captured, if any.
    case active(current: PaymentItem?)
    /// Complete sent; waiting for the result.
    case completing
    /// Cancel sent; waiting for Twilio to confirm.
    case cancelling
    case completed(PaymentOutcome)
    case cancelled(reason: String)
    case failed(PaymentFailure)
    /// The call is over (the caller hung up, or Twilio reports the call no longer in progress);
    /// no payment can continue on it.
    case callEnded(PaymentFailure)

    /// Whether the session has ended for good.
    public var isFinished: Bool {
        switch self {
        case .completed, .cancelled, .failed, .callEnded: return true
        default: return false
        }
    }

    /// The phase without its details: what hosts switch on and schemas list (`allCases`).
    public enum Kind: String, Sendable, CaseIterable {
        case starting, active, completing, cancelling, completed, cancelled, failed
        case callEnded = "call-ended"
    }

    /// The phase without its details.
    public var kind: Kind {
        switch self {
        case .starting: return .starting
        case .active: return .active
        case .completing: return .completing
        case .cancelling: return .cancelling
        case .completed: return .completed
        case .cancelled: return .cancelled
        case .failed: return .failed
        case .callEnded: return .callEnded
        }
    }

    /// A one-word name: starting, active, completing, cancelling, completed, cancelled, failed,
    /// call-ended (``Kind``'s raw value).
    public var name: String { kind.rawValue }
}

/// Everything known about one payment session: what was asked, what has been captured (masked
/// only), what failed and why, and where the session stands. A value type: every change makes
/// a new version.
public struct PaymentSession: Sendable, Equatable {
    /// This server's own key for the session, from before Twilio knows it (a random UUID).
    public var id: String
    /// The payment session's SID, once Twilio created it.
    public var paymentSID: PaymentSID?
    /// The SHA-256 of the secret in the session's callback URL (``CallbackSecretHash``): how a
    /// callback finds its session, in any replica, without the store holding the secret (or the
    /// URL, which carries it: the coordinator derives it again for each request).
    public var callbackSecretHash: String
    /// The idempotency key of each operation sent (or about to be sent) to Twilio whose outcome
    /// is not known yet. Kept with the session, so a retry of the same operation — from this
    /// process or another — sends the same key and Twilio does the work only once.
    public var inFlight: [PaymentOperation: String]
    public var callSID: CallSID
    public var configuration: PaymentConfiguration
    public var items: [PaymentItem: ItemProgress]
    /// Items still needed: from the configuration until Twilio reports `Required`, then exactly
    /// what Twilio's latest `Required` lists.
    public var required: [PaymentItem]
    /// Whether `required` is Twilio's word (a callback carried `Required`) rather than our
    /// expectation from the options.
    public var requiredFromTwilio: Bool
    /// The `DateUpdated` of the callback whose `Required` is in `required`: an older callback
    /// arriving late does not overwrite a newer list.
    public var requiredReportedAt: Date?
    /// Tokens of Twilio's latest `Required` that name no item this library knows, kept verbatim.
    public var unrecognizedRequired: [String]
    public var phase: PaymentPhase
    /// The card brand Twilio detected (`visa`…).
    public var cardType: String?
    /// The most recent capture error, until that item is captured.
    public var lastError: PaymentErrorType?
    /// The most recent REST failure, as a sentence, until the next success.
    public var lastRequestError: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// Grows by one with every change; never goes back.
    public var version: UInt64
    /// Who started the session (``PaymentActor/mayAccess(_:)``); `nil` when a host without
    /// principals started it.
    public var owner: PaymentOwner?
    /// How the charge was authorized, when the spending policy counted it or the backend fixed
    /// its amount.
    public var charge: ChargeAuthorization?
    /// The host's own name for what this payment belongs to (a voice app's conversation id),
    /// echoed in every notice; at most 256 characters, never card data.
    public var reference: String?
    /// What this payment did to its call's recordings; `nil` when it does not pause them.
    public var recordings: RecordingsPause?

    public init(
        callSID: CallSID, configuration: PaymentConfiguration, at date: Date, id: String = UUID().uuidString,
        callbackSecretHash: String = ""
    ) {
        self.id = id
        self.callbackSecretHash = callbackSecretHash
        self.inFlight = [:]
        self.paymentSID = nil
        self.callSID = callSID
        self.configuration = configuration
        self.items = [:]
        self.required = configuration.requiredItems
        self.requiredFromTwilio = false
        self.requiredReportedAt = nil
        self.unrecognizedRequired = []
        self.phase = .starting
        self.createdAt = date
        self.updatedAt = date
        self.version = 1
    }

    /// The progress of `item`.
    public func progress(_ item: PaymentItem) -> ItemProgress {
        items[item] ?? ItemProgress()
    }

    /// The state of `item`.
    public func state(_ item: PaymentItem) -> ItemState {
        progress(item).state
    }

    /// The items still missing, in asking order. Once Twilio has reported `Required`, every item
    /// it lists is missing, whatever this session believed before (Twilio may ask again for an
    /// item it had accepted, for example after `input-matching-failed`); before that, the
    /// expected items not captured yet.
    public var missingItems: [PaymentItem] {
        (requiredFromTwilio ? required : required.filter { !state($0).isCaptured }).sorted()
    }

    /// The masked value of an item, if Twilio reported one.
    public func maskedValue(_ item: PaymentItem) -> String? {
        switch state(item) {
        case .capturing(let masked), .captured(let masked): return masked
        default: return nil
        }
    }
}
