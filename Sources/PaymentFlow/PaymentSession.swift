public import Foundation
public import TwilioPayments

/// One piece of payment information the caller types on the keypad. The `-matcher` items are
/// the second entries that `requireMatchingInputs` asks for (the caller types the item twice and
/// Twilio checks that both agree); each is tracked as an item of its own.
public enum PaymentItem: String, Sendable, CaseIterable, Codable, Comparable {
    case cardNumber = "payment-card-number"
    case cardNumberMatcher = "payment-card-number-matcher"
    case securityCode = "security-code"
    case securityCodeMatcher = "security-code-matcher"
    case expirationDate = "expiration-date"
    case expirationDateMatcher = "expiration-date-matcher"
    case postalCode = "postal-code"
    case postalCodeMatcher = "postal-code-matcher"
    case bankRoutingNumber = "bank-routing-number"
    case bankAccountNumber = "bank-account-number"

    /// The items a caller types once (no matchers), in asking order.
    public static let entries: [PaymentItem] = allCases.filter { !$0.isMatcher }

    private static let order: [PaymentItem: Int] = Dictionary(uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })

    /// The order in which a caller is asked for items: each matcher right after its item.
    public static func < (lhs: PaymentItem, rhs: PaymentItem) -> Bool {
        order[lhs, default: 0] < order[rhs, default: 0]
    }

    /// The Twilio `Capture` value for this item.
    public var capture: CaptureItem { CaptureItem(rawValue: rawValue)! }

    /// The item a Twilio `Capture` value collects.
    public init?(capture: CaptureItem) {
        self.init(rawValue: capture.rawValue)
    }

    /// Whether this is the second entry of a matched item.
    public var isMatcher: Bool { rawValue.hasSuffix("-matcher") }

    /// The item this one confirms (itself for a first entry).
    public var base: PaymentItem {
        switch self {
        case .cardNumberMatcher: return .cardNumber
        case .securityCodeMatcher: return .securityCode
        case .expirationDateMatcher: return .expirationDate
        case .postalCodeMatcher: return .postalCode
        default: return self
        }
    }

    /// The second entry that confirms this item, for the items Twilio can match.
    public var matcher: PaymentItem? {
        switch self {
        case .cardNumber: return .cardNumberMatcher
        case .securityCode: return .securityCodeMatcher
        case .expirationDate: return .expirationDateMatcher
        case .postalCode: return .postalCodeMatcher
        default: return nil
        }
    }

    /// Words for a person: "card number", "card number (second entry)".
    public var spokenName: String {
        switch base {
        case .cardNumber: return isMatcher ? "card number again (to confirm it)" : "card number"
        case .securityCode: return isMatcher ? "security code again (to confirm it)" : "security code"
        case .expirationDate: return isMatcher ? "expiration date again (to confirm it)" : "expiration date"
        case .postalCode: return isMatcher ? "postal code again (to confirm it)" : "postal code"
        case .bankRoutingNumber: return "bank routing number"
        default: return "bank account number"
        }
    }
}

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

/// What a session was asked to do.
public struct PaymentConfiguration: Sendable, Equatable {
    /// The options sent to Twilio when the session was created.
    public var options: PaymentSessionOptions

    public init(options: PaymentSessionOptions = PaymentSessionOptions()) {
        self.options = options
    }

    public var paymentMethod: PaymentMethod { options.paymentMethod ?? .creditCard }
    /// `true` when an amount greater than zero is charged; `false` when the card or account is
    /// only tokenized (no amount, or zero, as Twilio treats it).
    public var isCharge: Bool { options.isCharge }

    /// The items the caller is asked to type twice.
    private var matched: Set<PaymentItem> {
        Set((options.requireMatchingInputs ?? []).compactMap { PaymentItem(rawValue: $0.rawValue) })
    }

    /// The items this configuration needs, before Twilio says otherwise.
    public var requiredItems: [PaymentItem] {
        switch paymentMethod {
        case .achDebit:
            return [.bankRoutingNumber, .bankAccountNumber]
        case .creditCard:
            var items: [PaymentItem] = [.cardNumber]
            if options.securityCode ?? true { items.append(.securityCode) }
            items.append(.expirationDate)
            if options.postalCode ?? true { items.append(.postalCode) }
            return items.flatMap { item in matched.contains(item) ? [item, item.matcher!] : [item] }
        }
    }

    /// The items that make sense for this payment method: every card item (Twilio may ask for
    /// one the options left out), and the matchers of the items to be typed twice.
    public var applicableItems: [PaymentItem] {
        if paymentMethod == .achDebit { return [.bankRoutingNumber, .bankAccountNumber] }
        return [PaymentItem.cardNumber, .securityCode, .expirationDate, .postalCode].flatMap { item in
            matched.contains(item) ? [item, item.matcher!] : [item]
        }
    }
}

/// How a session ended well.
public struct PaymentOutcome: Sendable, Equatable {
    public var result: PaymentResult
    /// The charge's confirmation code (charges).
    public var confirmationCode: String?
    /// The token (tokenization).
    public var token: String?
    public var profileID: String?

    public init(result: PaymentResult, confirmationCode: String? = nil, token: String? = nil, profileID: String? = nil) {
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

    public init(result: PaymentResult? = nil, paymentError: String? = nil, payErrorCode: Int? = nil, connectorError: String? = nil,
                reason: String) {
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

    public init(callSID: CallSID, configuration: PaymentConfiguration, at date: Date, id: String = UUID().uuidString,
                callbackSecretHash: String = "") {
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
