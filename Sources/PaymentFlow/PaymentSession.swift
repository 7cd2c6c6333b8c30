public import Foundation
public import TwilioPayments

/// One piece of payment information the caller types on the keypad.
public enum PaymentItem: String, Sendable, CaseIterable, Codable, Comparable {
    case cardNumber = "payment-card-number"
    case securityCode = "security-code"
    case expirationDate = "expiration-date"
    case postalCode = "postal-code"
    case bankRoutingNumber = "bank-routing-number"
    case bankAccountNumber = "bank-account-number"

    /// The order in which a caller is asked for items.
    public static func < (lhs: PaymentItem, rhs: PaymentItem) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The Twilio `Capture` value for this item.
    public var capture: CaptureItem { CaptureItem(rawValue: rawValue)! }

    /// The item a Twilio `Capture` value collects (matcher variants map to their item).
    public init?(capture: CaptureItem) {
        let base = capture.rawValue.hasSuffix("-matcher") ? String(capture.rawValue.dropLast("-matcher".count)) : capture.rawValue
        self.init(rawValue: base)
    }

    /// Words for a person: "card number".
    public var spokenName: String {
        switch self {
        case .cardNumber: return "card number"
        case .securityCode: return "security code"
        case .expirationDate: return "expiration date"
        case .postalCode: return "postal code"
        case .bankRoutingNumber: return "bank routing number"
        case .bankAccountNumber: return "bank account number"
        }
    }

    /// Whether the item belongs to a card or a bank (ACH) payment.
    public var isBankItem: Bool { self == .bankRoutingNumber || self == .bankAccountNumber }
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
}

/// One item's state plus its history.
public struct ItemProgress: Sendable, Equatable {
    public var state: ItemState = .notRequested
    /// Capture attempts that failed (an `ErrorType` was reported).
    public var failedAttempts: Int = 0
    /// Capture requests made.
    public var requests: Int = 0

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
    /// `true` when an amount is charged; `false` when the card is only tokenized.
    public var isCharge: Bool { options.chargeAmount != nil }

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
            return items
        }
    }

    /// The items that make sense for this payment method.
    public var applicableItems: [PaymentItem] {
        paymentMethod == .achDebit ? [.bankRoutingNumber, .bankAccountNumber] : [.cardNumber, .securityCode, .expirationDate, .postalCode]
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

    /// Whether the session has ended for good.
    public var isFinished: Bool {
        switch self {
        case .completed, .cancelled, .failed: return true
        default: return false
        }
    }

    /// A one-word name: starting, active, completing, cancelling, completed, cancelled, failed.
    public var name: String {
        switch self {
        case .starting: return "starting"
        case .active: return "active"
        case .completing: return "completing"
        case .cancelling: return "cancelling"
        case .completed: return "completed"
        case .cancelled: return "cancelled"
        case .failed: return "failed"
        }
    }
}

/// Everything known about one payment session: what was asked, what has been captured (masked
/// only), what failed and why, and where the session stands. A value type: every change makes
/// a new version.
public struct PaymentSession: Sendable, Equatable {
    /// The payment session's SID, once Twilio created it.
    public var paymentSID: PaymentSID?
    public var callSID: CallSID
    public var configuration: PaymentConfiguration
    public var items: [PaymentItem: ItemProgress]
    /// Items still needed, from the configuration and then from Twilio's `Required`.
    public var required: [PaymentItem]
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

    public init(callSID: CallSID, configuration: PaymentConfiguration, at date: Date) {
        self.paymentSID = nil
        self.callSID = callSID
        self.configuration = configuration
        self.items = [:]
        self.required = configuration.requiredItems
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

    /// Required items not captured yet, in asking order.
    public var missingItems: [PaymentItem] {
        required.filter { !state($0).isCaptured }.sorted()
    }

    /// The masked value of an item, if Twilio reported one.
    public func maskedValue(_ item: PaymentItem) -> String? {
        switch state(item) {
        case .capturing(let masked), .captured(let masked): return masked
        default: return nil
        }
    }
}
