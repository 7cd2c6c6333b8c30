import Foundation

/// How the caller pays (`PaymentMethod`).
public enum PaymentMethod: String, Sendable, CaseIterable, Codable {
    case creditCard = "credit-card"
    case achDebit = "ach-debit"
}

/// What kind of token a tokenization returns (`TokenType`).
public enum TokenType: String, Sendable, CaseIterable, Codable {
    case oneTime = "one-time"
    case reusable
    /// Stripe connector only.
    case paymentMethod = "payment-method"
}

/// The kind of bank account for ACH (`BankAccountType`).
public enum BankAccountType: String, Sendable, CaseIterable, Codable {
    case consumerChecking = "consumer-checking"
    case consumerSavings = "consumer-savings"
    case commercialChecking = "commercial-checking"
}

/// A card brand Twilio can accept (`ValidCardTypes`).
public enum CardType: String, Sendable, CaseIterable, Codable {
    case visa, mastercard, amex, maestro, discover, optima, jcb
    case dinersClub = "diners-club"
    case enroute
}

/// One piece of payment information the caller types on the keypad: Twilio's `Capture` values,
/// including the `-matcher` items, the second entries that `RequireMatchingInputs` asks for (the
/// caller types the item twice and Twilio checks that both agree). Declared in asking order:
/// each matcher right after its item (PaymentFlow orders items by it).
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
}

extension PaymentItem {
    private static let order: [PaymentItem: Int] = Dictionary(
        uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })

    /// The order in which a caller is asked for items (the declaration's): each matcher right
    /// after its item.
    public static func < (lhs: PaymentItem, rhs: PaymentItem) -> Bool {
        order[lhs, default: 0] < order[rhs, default: 0]
    }

    /// The item a Twilio name denotes, however it is spelled: `payment-card-number`,
    /// `PaymentCardNumber`, `payment_card_number` and `paymentCardNumber` are one item
    /// (Twilio's own documentation writes `Required=ExpirationDate`). `PaymentCardPostalCode`
    /// (the callback field's name) is the postal code.
    public init?(twilioName name: String) {
        guard let item = Self.byNormalizedName[TwilioName.normalized(name)] else { return nil }
        self = item
    }

    private static let byNormalizedName: [String: PaymentItem] = {
        var names = Dictionary(uniqueKeysWithValues: allCases.map { (TwilioName.normalized($0.rawValue), $0) })
        names["paymentcardpostalcode"] = .postalCode
        names["paymentcardpostalcodematcher"] = .postalCodeMatcher
        return names
    }()

    /// Whether this is the second entry of an item that `RequireMatchingInputs` asks for twice.
    public var isMatcher: Bool { rawValue.hasSuffix("-matcher") }

    /// The second-entry item for this one (`payment-card-number` → `payment-card-number-matcher`),
    /// if it can be matched.
    public var matcher: PaymentItem? { isMatcher ? nil : PaymentItem(rawValue: rawValue + "-matcher") }

    /// The item this one confirms (itself for a first entry).
    public var base: PaymentItem {
        isMatcher ? PaymentItem(rawValue: String(rawValue.dropLast("-matcher".count))) ?? self : self
    }
}

/// How names from Twilio are compared: case, hyphens, underscores and spaces do not matter.
public enum TwilioName {
    /// `Payment-Card_Number` → `paymentcardnumber`.
    public static func normalized(_ name: String) -> String {
        // ASCII names (all of Twilio's) by their bytes: letters lowercased and digits kept are
        // what the scalar way keeps of ASCII, without asking Unicode's tables for each letter
        // (a fifth of parsing a callback; Docs/benchmarks.md).
        if name.utf8.allSatisfy({ $0 < 0x80 }) {
            var kept: [UInt8] = []
            kept.reserveCapacity(name.utf8.count)
            for byte in name.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): kept.append(byte)
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): kept.append(byte + 32)
                default: break
                }
            }
            return String(decoding: kept, as: UTF8.self)
        }
        return normalizedByScalar(name)
    }

    /// Any name, scalar by scalar (and the reference the byte way is tested against).
    static func normalizedByScalar(_ name: String) -> String {
        String(
            String.UnicodeScalarView(
                name.unicodeScalars.filter { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        )
        .lowercased()
    }
}

/// An item that `RequireMatchingInputs` can ask the caller to enter twice.
public enum MatchableInput: String, Sendable, CaseIterable, Codable {
    case paymentCardNumber = "payment-card-number"
    case expirationDate = "expiration-date"
    case securityCode = "security-code"
    case postalCode = "postal-code"
}

/// How a session ends (`Status`).
public enum PaymentSessionStatus: String, Sendable, CaseIterable, Codable {
    case complete
    case cancel
}

/// Everything the create-payment call accepts besides the idempotency key and callback URL.
///
/// `chargeAmount` absent means tokenize only. Values are checked by ``validate()`` before
/// anything is sent, so a mistake costs no round trip.
public struct PaymentSessionOptions: Sendable, Equatable {
    /// A decimal amount as text (`"9.99"`), kept exactly as given (never rounded through a
    /// binary floating-point number), ≥ 0 and < 1,000,000; `nil` or zero to tokenize only.
    public var chargeAmount: String?
    /// ISO 4217 code such as `USD`.
    public var currency: String?
    public var description: String?
    /// The Pay Connector's unique name (Twilio's default is `Default`).
    public var paymentConnector: String?
    public var paymentMethod: PaymentMethod?
    public var tokenType: TokenType?
    public var securityCode: Bool?
    public var postalCode: Bool?
    public var minPostalCodeLength: Int?
    public var validCardTypes: [CardType]?
    /// Seconds of silence allowed between digits (1...600).
    public var timeout: Int?
    public var bankAccountType: BankAccountType?
    /// Connector-specific parameters, sent as a flat JSON object in `Parameter`.
    public var parameters: [String: ConnectorParameter]?
    /// How the caller enters the details (`Input`); Twilio accepts only `dtmf`.
    public var input: String?
    public var confirmation: Bool?
    public var requireMatchingInputs: [MatchableInput]?

    public init(
        chargeAmount: String? = nil, currency: String? = nil, description: String? = nil,
        paymentConnector: String? = nil,
        paymentMethod: PaymentMethod? = nil, tokenType: TokenType? = nil, securityCode: Bool? = nil,
        postalCode: Bool? = nil,
        minPostalCodeLength: Int? = nil, validCardTypes: [CardType]? = nil, timeout: Int? = nil,
        bankAccountType: BankAccountType? = nil, parameters: [String: ConnectorParameter]? = nil,
        confirmation: Bool? = nil,
        requireMatchingInputs: [MatchableInput]? = nil, input: String? = nil
    ) {
        self.input = input
        self.chargeAmount = chargeAmount
        self.currency = currency
        self.description = description
        self.paymentConnector = paymentConnector
        self.paymentMethod = paymentMethod
        self.tokenType = tokenType
        self.securityCode = securityCode
        self.postalCode = postalCode
        self.minPostalCodeLength = minPostalCodeLength
        self.validCardTypes = validCardTypes
        self.timeout = timeout
        self.bankAccountType = bankAccountType
        self.parameters = parameters
        self.confirmation = confirmation
        self.requireMatchingInputs = requireMatchingInputs
    }

    /// Every problem Twilio would reject, found locally; empty when the options are valid.
    public func validate() -> [String] {
        var problems: [String] = []
        if let amount = chargeAmount {
            let parts = amount.split(separator: ".", omittingEmptySubsequences: false)
            let wellFormed =
                !amount.isEmpty && parts.count <= 2
                && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
            if !wellFormed {
                problems.append("chargeAmount must be a decimal number such as 9.99, got \"\(amount)\"")
            } else if let value = Decimal(string: amount, locale: Locale(identifier: "en_US_POSIX")),
                !(value >= 0 && value < 1_000_000)
            {
                problems.append(
                    "chargeAmount must be at least 0 (0 tokenizes only) and less than 1,000,000 (error 64003), got \(amount)"
                )
            }
        }
        if let currency, !(currency.utf8.count == 3 && currency.allSatisfy { $0.isASCII && $0.isLetter }) {
            problems.append("currency must be a three-letter ISO 4217 code such as USD, got \"\(currency)\"")
        }
        if let timeout, !(1...600).contains(timeout) {
            problems.append("timeout must be between 1 and 600 seconds, got \(timeout)")
        }
        if let minPostalCodeLength, minPostalCodeLength < 1 {
            problems.append("minPostalCodeLength must be a positive integer, got \(minPostalCodeLength)")
        }
        if bankAccountType != nil, paymentMethod != .achDebit {
            problems.append("bankAccountType applies only to paymentMethod ach-debit (error 64017)")
        }
        if tokenType == .paymentMethod, paymentMethod == .achDebit {
            problems.append("tokenType payment-method applies to cards (Stripe connector) only")
        }
        if let validCardTypes, validCardTypes.isEmpty {
            problems.append("validCardTypes must name at least one card type")
        }
        if let paymentConnector, paymentConnector.isEmpty {
            problems.append("paymentConnector must not be empty")
        }
        if let input, input != "dtmf" {
            problems.append("input must be dtmf (the only input Twilio accepts), got \"\(input)\"")
        }
        if let requireMatchingInputs, paymentMethod == .achDebit, !requireMatchingInputs.isEmpty {
            problems.append("requireMatchingInputs applies to card payments only")
        }
        return problems
    }

    /// The form fields for these options, in the order the reference lists them.
    func formFields() -> [(String, String)] {
        var fields: [(String, String)] = []
        func add(_ name: String, _ value: String?) { if let value { fields.append((name, value)) } }
        add("ChargeAmount", chargeAmount)
        add("Currency", currency)
        add("Description", description)
        add("PaymentConnector", paymentConnector)
        add("PaymentMethod", paymentMethod?.rawValue)
        add("TokenType", tokenType?.rawValue)
        add("SecurityCode", securityCode.map { $0 ? "true" : "false" })
        add("PostalCode", postalCode.map { $0 ? "true" : "false" })
        add("MinPostalCodeLength", minPostalCodeLength.map(String.init))
        add("ValidCardTypes", validCardTypes.map { $0.map(\.rawValue).joined(separator: " ") })
        add("Timeout", timeout.map(String.init))
        add("Input", input)
        add("BankAccountType", bankAccountType?.rawValue)
        add("Parameter", parameters.map(Self.flatJSON))
        add("Confirmation", confirmation.map { $0 ? "true" : "false" })
        add("RequireMatchingInputs", requireMatchingInputs.map { $0.map(\.rawValue).joined(separator: ",") })
        return fields
    }

    /// Whether an amount is charged: `chargeAmount` is present and greater than zero (Twilio
    /// treats an absent or zero amount as tokenize only).
    public var isCharge: Bool {
        guard let chargeAmount, let value = Decimal(string: chargeAmount, locale: Locale(identifier: "en_US_POSIX"))
        else { return false }
        return value > 0
    }

    /// A flat JSON object with sorted keys (and slashes left unescaped), as Twilio expects in
    /// `Parameter`.
    static func flatJSON(_ parameters: [String: ConnectorParameter]) -> String {
        let members = parameters.keys.sorted().map { key in quoted(key) + ":" + parameters[key]!.json }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes]))
            ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// One value of the connector-specific `Parameter` object: Twilio's `Parameter` is a flat
/// JSON object, so values are scalars.
public enum ConnectorParameter: Sendable, Equatable {
    case string(String)
    /// A number, kept as its decimal text so nothing is rounded.
    case number(String)
    case bool(Bool)

    /// The value as JSON.
    var json: String {
        switch self {
        case .string(let text): return PaymentSessionOptions.quoted(text)
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        }
    }
}

/// What an update call asks for: capture one item, or end the session.
public enum PaymentUpdate: Sendable, Equatable {
    case capture(PaymentItem)
    case status(PaymentSessionStatus)

    func formFields() -> [(String, String)] {
        switch self {
        case .capture(let item): return [("Capture", item.rawValue)]
        case .status(let status): return [("Status", status.rawValue)]
        }
    }
}
