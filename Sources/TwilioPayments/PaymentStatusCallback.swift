public import Foundation

/// Why a capture failed, as a callback's `ErrorType` reports it.
public enum PaymentErrorType: Sendable, Hashable, RawRepresentable {
    case inputTimeout, invalidCardNumber, invalidCardType, invalidDate, invalidSecurityCode, invalidPostalCode
    case invalidBankRoutingNumber, invalidBankAccountNumber, invalidBankAccountType
    case invalidCardNumberSecurityCodeCaptureSequence, inputMatchingFailed, sessionInProgress, internalError
    /// A value this library does not know, kept verbatim.
    case other(String)

    /// Every documented value.
    public static let documented: [PaymentErrorType] = [.inputTimeout, .invalidCardNumber, .invalidCardType, .invalidDate, .invalidSecurityCode, .invalidPostalCode, .invalidBankRoutingNumber, .invalidBankAccountNumber, .invalidBankAccountType, .invalidCardNumberSecurityCodeCaptureSequence, .inputMatchingFailed, .sessionInProgress, .internalError]

    private static let byName: [String: PaymentErrorType] = Dictionary(uniqueKeysWithValues: documented.map { ($0.rawValue, $0) })

    public init(rawValue: String) {
        self = Self.byName[rawValue] ?? .other(rawValue)
    }

    // A switch, not a table lookup: `==` on a RawRepresentable type compares raw values.
    public var rawValue: String {
        switch self {
        case .inputTimeout: return "input-timeout"
        case .invalidCardNumber: return "invalid-card-number"
        case .invalidCardType: return "invalid-card-type"
        case .invalidDate: return "invalid-date"
        case .invalidSecurityCode: return "invalid-security-code"
        case .invalidPostalCode: return "invalid-postal-code"
        case .invalidBankRoutingNumber: return "invalid-bank-routing-number"
        case .invalidBankAccountNumber: return "invalid-bank-account-number"
        case .invalidBankAccountType: return "invalid-bank-account-type"
        case .invalidCardNumberSecurityCodeCaptureSequence: return "invalid-card-number-security-code-capture-sequence"
        case .inputMatchingFailed: return "input-matching-failed"
        case .sessionInProgress: return "session-in-progress"
        case .internalError: return "internal-error"
        case .other(let raw): return raw
        }
    }
}

/// How a session ended, as a callback's `Result` reports it.
public enum PaymentResult: Sendable, Hashable, RawRepresentable {
    case success, paymentConnectorError, callerInterruptedWithStar, callerHungUp, validationError, tooManyFailedAttempts, internalError
    /// A value this library does not know, kept verbatim.
    case other(String)

    /// Every documented value.
    public static let documented: [PaymentResult] = [.success, .paymentConnectorError, .callerInterruptedWithStar, .callerHungUp, .validationError, .tooManyFailedAttempts, .internalError]

    private static let byName: [String: PaymentResult] = Dictionary(uniqueKeysWithValues: documented.map { ($0.rawValue, $0) })

    public init(rawValue: String) {
        self = Self.byName[rawValue] ?? .other(rawValue)
    }

    // A switch, not a table lookup: `==` on a RawRepresentable type compares raw values.
    public var rawValue: String {
        switch self {
        case .success: return "success"
        case .paymentConnectorError: return "payment-connector-error"
        case .callerInterruptedWithStar: return "caller-interrupted-with-star"
        case .callerHungUp: return "caller-hung-up"
        case .validationError: return "validation-error"
        case .tooManyFailedAttempts: return "too-many-failed-attempts"
        case .internalError: return "internal-error"
        case .other(let raw): return raw
        }
    }
}

/// One status callback from Twilio, parsed field by field (reference §4). Values are kept as
/// Twilio masked them; fields this library does not know are kept in `unknownFields`.
public struct PaymentStatusCallback: Sendable, Equatable {
    public var accountSID: AccountSID?
    public var callSID: CallSID?
    /// The payment session (`Sid`).
    public var paymentSID: PaymentSID?
    public var dateCreated: Date?
    public var dateUpdated: Date?
    public var paymentConnector: String?
    public var paymentMethod: PaymentMethod?
    public var tokenType: TokenType?
    public var chargeAmount: String?
    public var currency: String?
    public var bankAccountType: BankAccountType?
    /// The item being collected.
    public var capture: CaptureItem?
    /// `true` while digits are still arriving for `capture`.
    public var partialResult: Bool?
    /// Items still to collect, in the order given; unknown names kept verbatim in
    /// `requiredRaw`.
    public var required: [CaptureItem]
    public var requiredRaw: [String]
    /// Whether the callback carried a `Required` field at all (empty means nothing is left).
    public var hasRequired: Bool
    public var errorType: PaymentErrorType?
    public var paymentCardNumber: String?
    public var paymentCardType: String?
    public var expirationDate: String?
    public var securityCode: String?
    public var paymentCardPostalCode: String?
    public var bankAccountNumber: String?
    public var bankRoutingNumber: String?
    public var result: PaymentResult?
    public var paymentConfirmationCode: String?
    public var paymentToken: String?
    public var profileID: String?
    public var paymentError: String?
    public var payErrorCode: Int?
    public var connectorError: String?
    /// Fields not listed above, as sent.
    public var unknownFields: [String: String]

    static let knownNames: Set<String> = [
        "AccountSid", "CallSid", "Sid", "DateCreated", "DateUpdated", "PaymentConnector", "PaymentMethod", "TokenType",
        "ChargeAmount", "Currency", "BankAccountType", "Capture", "PartialResult", "Required", "ErrorType", "PaymentCardNumber",
        "PaymentCardType", "ExpirationDate", "SecurityCode", "PaymentCardPostalCode", "BankAccountNumber", "BankRoutingNumber",
        "Result", "PaymentConfirmationCode", "PaymentToken", "ProfileId", "PaymentError", "PayErrorCode", "ConnectorError",
    ]

    /// Parses the form fields of a callback (the last value wins for a repeated name).
    public init(fields: [(String, String)]) {
        var values: [String: String] = [:]
        for (name, value) in fields { values[name] = value }
        func text(_ name: String) -> String? {
            guard let value = values[name], !value.isEmpty else { return nil }
            return value
        }
        accountSID = text("AccountSid").flatMap(AccountSID.init)
        callSID = text("CallSid").flatMap(CallSID.init)
        paymentSID = text("Sid").flatMap(PaymentSID.init)
        dateCreated = text("DateCreated").flatMap(TwilioDate.parse)
        dateUpdated = text("DateUpdated").flatMap(TwilioDate.parse)
        paymentConnector = text("PaymentConnector")
        paymentMethod = text("PaymentMethod").flatMap(PaymentMethod.init(rawValue:))
        tokenType = text("TokenType").flatMap(TokenType.init(rawValue:))
        chargeAmount = text("ChargeAmount")
        currency = text("Currency")
        bankAccountType = text("BankAccountType").flatMap(BankAccountType.init(rawValue:))
        capture = text("Capture").flatMap(CaptureItem.init(rawValue:))
        partialResult = text("PartialResult").flatMap(Self.parseBool)
        hasRequired = values["Required"] != nil
        requiredRaw = (values["Required"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
        required = requiredRaw.compactMap(CaptureItem.init(rawValue:))
        errorType = text("ErrorType").map(PaymentErrorType.init(rawValue:))
        paymentCardNumber = text("PaymentCardNumber")
        paymentCardType = text("PaymentCardType")
        expirationDate = text("ExpirationDate")
        securityCode = text("SecurityCode")
        paymentCardPostalCode = text("PaymentCardPostalCode")
        bankAccountNumber = text("BankAccountNumber")
        bankRoutingNumber = text("BankRoutingNumber")
        result = text("Result").map(PaymentResult.init(rawValue:))
        paymentConfirmationCode = text("PaymentConfirmationCode")
        paymentToken = text("PaymentToken")
        profileID = text("ProfileId")
        paymentError = text("PaymentError")
        payErrorCode = text("PayErrorCode").flatMap { Int($0) }
        connectorError = text("ConnectorError")
        unknownFields = values.filter { !Self.knownNames.contains($0.key) }
    }

    /// Parses a URL-encoded callback body; `nil` when the body is not valid form encoding.
    public init?(body: String) {
        guard let fields = FormEncoding.decode(body) else { return nil }
        self.init(fields: fields)
    }

    /// Twilio sends `true`/`false`; be lenient about case and about `1`/`0`.
    static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: return nil
        }
    }
}
