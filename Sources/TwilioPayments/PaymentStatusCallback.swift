public import Foundation

/// Why a capture failed, as a callback's `ErrorType` reports it.
public enum PaymentErrorType: Sendable, Hashable, RawRepresentable {
    case inputTimeout, invalidCardNumber, invalidCardType, invalidDate, invalidSecurityCode, invalidPostalCode
    case invalidBankRoutingNumber, invalidBankAccountNumber, invalidBankAccountType
    case invalidCardNumberSecurityCodeCaptureSequence, inputMatchingFailed, sessionInProgress, internalError
    /// A value this library does not know, kept verbatim.
    case other(String)

    /// Every documented value.
    public static let documented: [PaymentErrorType] = [
        .inputTimeout, .invalidCardNumber, .invalidCardType, .invalidDate, .invalidSecurityCode, .invalidPostalCode,
        .invalidBankRoutingNumber, .invalidBankAccountNumber, .invalidBankAccountType,
        .invalidCardNumberSecurityCodeCaptureSequence, .inputMatchingFailed, .sessionInProgress, .internalError,
    ]

    private static let byName: [String: PaymentErrorType] = Dictionary(
        uniqueKeysWithValues: documented.map { (TwilioName.normalized($0.rawValue), $0) })

    /// The documented value however it is spelled (`invalid-card-number`, `InvalidCardNumber`,
    /// `invalid_card_number`); anything else is kept verbatim as ``other(_:)``.
    public init(rawValue: String) {
        self = Self.byName[TwilioName.normalized(rawValue)] ?? .other(rawValue)
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
    case success, paymentConnectorError, callerInterruptedWithStar, callerHungUp, validationError,
        tooManyFailedAttempts, internalError
    /// A value this library does not know, kept verbatim.
    case other(String)

    /// Every documented value.
    public static let documented: [PaymentResult] = [
        .success, .paymentConnectorError, .callerInterruptedWithStar, .callerHungUp, .validationError,
        .tooManyFailedAttempts, .internalError,
    ]

    private static let byName: [String: PaymentResult] = Dictionary(
        uniqueKeysWithValues: documented.map { (TwilioName.normalized($0.rawValue), $0) })

    /// The documented value however it is spelled; anything else is kept verbatim as ``other(_:)``.
    public init(rawValue: String) {
        self = Self.byName[TwilioName.normalized(rawValue)] ?? .other(rawValue)
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
    /// The item being collected, however Twilio spelled it.
    public var capture: PaymentItem?
    /// `Capture` as sent, when it named no item this library knows.
    public var unrecognizedCapture: String?
    /// `true` while digits are still arriving for `capture`.
    public var partialResult: Bool?
    /// Items still to collect, in the order given, duplicates dropped. Every `Required` field
    /// counts (repeated fields are merged), split on commas, semicolons and white space, and each
    /// token is matched however it is spelled (see ``PaymentItem/init(twilioName:)``).
    public var required: [PaymentItem]
    /// Every token of every `Required` field, as sent.
    public var requiredRaw: [String]
    /// The tokens of `Required` that named no item this library knows, kept verbatim.
    public var unrecognizedRequired: [String]
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
        "ChargeAmount", "Currency", "BankAccountType", "Capture", "PartialResult", "Required", "ErrorType",
        "PaymentCardNumber",
        "PaymentCardType", "ExpirationDate", "SecurityCode", "PaymentCardPostalCode", "BankAccountNumber",
        "BankRoutingNumber",
        "Result", "PaymentConfirmationCode", "PaymentToken", "ProfileId", "PaymentError", "PayErrorCode",
        "ConnectorError",
    ]

    /// Parses the form fields of a callback. For a repeated name the last value wins, except
    /// `Required`, whose values are merged.
    public init(fields: [(String, String)]) {
        var values: [String: String] = [:]
        values.reserveCapacity(fields.count)
        var requiredValues: [String] = []
        for (name, value) in fields {
            values[name] = value
            if name == "Required" { requiredValues.append(value) }
        }
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
        capture = text("Capture").flatMap(PaymentItem.init(twilioName:))
        unrecognizedCapture = capture == nil ? text("Capture") : nil
        partialResult = text("PartialResult").flatMap(Self.parseBool)
        hasRequired = !requiredValues.isEmpty
        requiredRaw = requiredValues.flatMap(Self.requiredTokens)
        var items: [PaymentItem] = []
        var unrecognized: [String] = []
        for token in requiredRaw {
            if let item = PaymentItem(twilioName: token) {
                if !items.contains(item) { items.append(item) }
            } else {
                unrecognized.append(token)
            }
        }
        required = items
        unrecognizedRequired = unrecognized
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

    /// Sentences for every value in this callback that named nothing this library knows
    /// (`Capture`, `Required` tokens, `ErrorType`, `Result`), for a warning in the log; empty
    /// when everything was understood.
    public var unrecognizedValues: [String] {
        var notes: [String] = []
        if let unrecognizedCapture { notes.append("Capture=\(unrecognizedCapture)") }
        if !unrecognizedRequired.isEmpty {
            notes.append("Required tokens \(unrecognizedRequired.joined(separator: ","))")
        }
        if case .other(let raw)? = errorType { notes.append("ErrorType=\(raw)") }
        if case .other(let raw)? = result { notes.append("Result=\(raw)") }
        return notes
    }

    /// Parses a URL-encoded callback body; `nil` when the body is not valid form encoding.
    public init?(body: String) {
        guard let fields = FormEncoding.decode(body) else { return nil }
        self.init(fields: fields)
    }

    /// The items a `Required` value names, split at commas, semicolons and white space. ASCII
    /// values (Twilio's) by their bytes, each a character of its own; others by characters, as
    /// ``requiredTokensByCharacter(_:)`` (the reference the byte way is tested against).
    static func requiredTokens(_ value: String) -> [String] {
        guard value.utf8.allSatisfy({ $0 < 0x80 }) else { return requiredTokensByCharacter(value) }
        return value.utf8.split(whereSeparator: { byte in
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: ";") || byte == 0x20 || (0x09...0x0D).contains(byte)
        }).map { String(decoding: $0, as: UTF8.self) }
    }

    static func requiredTokensByCharacter(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == "," || $0 == ";" || $0.isWhitespace }).map(String.init)
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
