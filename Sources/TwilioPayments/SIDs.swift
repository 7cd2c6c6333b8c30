/// Why a string is not a valid Twilio SID, in words a person can act on.
public struct SIDError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of SID expected, such as `Account SID`.
    public var kind: String
    public var description: String
}

/// A Twilio resource identifier: a two-letter prefix followed by 32 hexadecimal digits.
///
/// Each SID kind is its own type (``AccountSID``, ``APIKeySID``, ``CallSID``,
/// ``PaymentSID``), so a call SID can never be passed where a payment SID is expected, and
/// no value of these types can be invalid.
public protocol TwilioSID: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    /// The two-letter prefix, such as `AC`.
    static var prefix: String { get }
    /// A name for error messages, such as `Account SID`.
    static var kind: String { get }
    /// The validated SID text.
    var rawValue: String { get }
    init(validated rawValue: String)
}

extension TwilioSID {
    /// Validates `text`, explaining exactly what is wrong with a bad value.
    public init(validating text: String) throws(SIDError) {
        if let problem = Self.problem(with: text) {
            throw SIDError(
                kind: Self.kind,
                description: "invalid \(Self.kind): expected \(Self.prefix) followed by 32 hex digits, \(problem)")
        }
        self.init(validated: text)
    }

    public init?(_ description: String) {
        guard Self.problem(with: description) == nil else { return nil }
        self.init(validated: description)
    }

    public var description: String { rawValue }

    private static func problem(with text: String) -> String? {
        let utf8 = Array(text.utf8)
        if utf8.count != 34 {
            return "got \(utf8.count) character\(utf8.count == 1 ? "" : "s")"
        }
        if !text.hasPrefix(prefix) {
            return "got one starting with \"\(text.prefix(2))\""
        }
        if let bad = utf8.dropFirst(2).firstIndex(where: { !isHexDigit($0) }) {
            return "got a non-hex character at position \(bad + 1)"
        }
        return nil
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}

/// A Twilio account SID (`AC` + 32 hex digits).
public struct AccountSID: TwilioSID {
    public static let prefix = "AC"
    public static let kind = "Account SID"
    public let rawValue: String
    public init(validated rawValue: String) { self.rawValue = rawValue }
}

/// A Twilio API key SID (`SK` + 32 hex digits), the user name of Basic auth with an API key.
public struct APIKeySID: TwilioSID {
    public static let prefix = "SK"
    public static let kind = "API key SID"
    public let rawValue: String
    public init(validated rawValue: String) { self.rawValue = rawValue }
}

/// A Twilio call SID (`CA` + 32 hex digits).
public struct CallSID: TwilioSID {
    public static let prefix = "CA"
    public static let kind = "Call SID"
    public let rawValue: String
    public init(validated rawValue: String) { self.rawValue = rawValue }
}

/// A Twilio call recording SID (`RE` + 32 hex digits).
public struct RecordingSID: TwilioSID {
    public static let prefix = "RE"
    public static let kind = "Recording SID"
    public let rawValue: String
    public init(validated rawValue: String) { self.rawValue = rawValue }
}

/// A Twilio payment session SID (`PK` + 32 hex digits).
public struct PaymentSID: TwilioSID {
    public static let prefix = "PK"
    public static let kind = "Payment SID"
    public let rawValue: String
    public init(validated rawValue: String) { self.rawValue = rawValue }
}
