// The storage format's own reader and writer: the shape of ``PaymentSession/storageJSON()``,
// written and read without Foundation's `Codable` machinery, which cost a replica on
// PostgreSQL 17 % of its CPU per callback (a compare-and-set encodes the session, every other
// replica decodes it again; Docs/benchmarks.md). Foundation stays the reference: anything this
// reader does not take for the plain shape (an escape in a string, a number that is not plain, a
// duplicate key, a type it does not expect) is read by `JSONDecoder` instead, which reads or
// refuses it as before; a string this writer would have to escape is written by `JSONEncoder`.
// Tests compare both, byte for byte and value for value.

import TwilioPayments

/// A JSON value as the store gives it back: objects, arrays, strings without escapes, numbers
/// kept as their text until a field says what it is.
enum StorageJSON {
    /// Members in the order written: a session's objects are small (two dozen members at most),
    /// and a scan of them is cheaper than hashing every key into a dictionary and again to look
    /// it up.
    case object([Member])
    case array([StorageJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// Why the plain reader stepped aside: the Foundation path decides.
    struct NotPlain: Error {}

    /// One member of an object.
    struct Member {
        let key: String
        let value: StorageJSON
    }

    /// The value in `bytes`, or `nil` when they are not JSON of the plain kind (see above).
    static func parse(_ bytes: UnsafeRawBufferPointer) -> StorageJSON? {
        var reader = Reader(bytes: bytes)
        guard let value = try? reader.value(depth: 0) else { return nil }
        reader.skipSpace()
        return reader.index == bytes.count ? value : nil
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        /// Deeper than any session (four levels): refused rather than recursed into.
        static let maximumDepth = 16
        /// Wider than any of a session's objects: left to the decoder, so that the duplicate
        /// check below stays a short scan.
        static let maximumMembers = 64

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(NotPlain) -> StorageJSON {
            skipSpace()
            guard index < bytes.count, depth < Self.maximumDepth else { throw NotPlain() }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var object: [Member] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(object)
                }
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    let member = try value(depth: depth + 1)
                    // A duplicate key: which one wins is the decoder's business, not ours.
                    guard object.count < Self.maximumMembers, !object.contains(where: { $0.key == key }) else {
                        throw NotPlain()
                    }
                    object.append(Member(key: key, value: member))
                    skipSpace()
                    guard index < bytes.count else { throw NotPlain() }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(UInt8(ascii: "}"))
                    return .object(object)
                }
            case UInt8(ascii: "["):
                index += 1
                var array: [StorageJSON] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(array)
                }
                while true {
                    array.append(try value(depth: depth + 1))
                    skipSpace()
                    guard index < bytes.count else { throw NotPlain() }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(UInt8(ascii: "]"))
                    return .array(array)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default: return .number(try number())
            }
        }

        mutating func expect(_ byte: UInt8) throws(NotPlain) {
            guard index < bytes.count, bytes[index] == byte else { throw NotPlain() }
            index += 1
        }

        mutating func literal(_ word: StaticString) throws(NotPlain) {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { throw NotPlain() }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw NotPlain() }
            index += count
        }

        /// A string without escapes or control characters, valid UTF-8.
        mutating func string() throws(NotPlain) -> String {
            try expect(UInt8(ascii: "\""))
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let utf8 = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                    index += 1
                    // As `String(validating:as:)` would say, without its unspecialized path (a
                    // quarter of this parser's time): ASCII is valid as it is; other bytes must
                    // decode unchanged.
                    let text = String(decoding: utf8, as: UTF8.self)
                    guard utf8.allSatisfy({ $0 < 0x80 }) || text.utf8.elementsEqual(utf8) else { throw NotPlain() }
                    return text
                }
                guard byte != UInt8(ascii: "\\"), byte >= 0x20 else { throw NotPlain() }
                index += 1
            }
            throw NotPlain()
        }

        /// A number as JSON spells it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
        mutating func number() throws(NotPlain) -> String {
            let start = index
            func digit(_ at: Int) -> Bool { at < bytes.count && (0x30...0x39).contains(bytes[at]) }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digit(index) else { throw NotPlain() }
            if bytes[index] == 0x30 {
                index += 1
            } else {
                while digit(index) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digit(index) else { throw NotPlain() }
                while digit(index) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digit(index) else { throw NotPlain() }
                while digit(index) { index += 1 }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }
    }
}

// MARK: - Reading the fields

/// An object's members, read as the stored types' `Codable` conformances would: a missing or
/// `null` optional is `nil`, anything of another type is not plain.
struct StorageFields {
    let members: [StorageJSON.Member]

    init(_ value: StorageJSON) throws(StorageJSON.NotPlain) {
        guard case .object(let members) = value else { throw StorageJSON.NotPlain() }
        self.members = members
    }

    func required<T>(
        _ key: String, _ read: (StorageJSON) throws(StorageJSON.NotPlain) -> T
    ) throws(StorageJSON.NotPlain)
        -> T
    {
        guard let value = self[key] else { throw StorageJSON.NotPlain() }
        return try read(value)
    }

    func optional<T>(
        _ key: String, _ read: (StorageJSON) throws(StorageJSON.NotPlain) -> T
    ) throws(StorageJSON.NotPlain)
        -> T?
    {
        guard let value = self[key] else { return nil }
        if case .null = value { return nil }
        return try read(value)
    }

    /// The member named `key`.
    subscript(key: String) -> StorageJSON? {
        for member in members where member.key == key { return member.value }
        return nil
    }

    static func string(_ value: StorageJSON) throws(StorageJSON.NotPlain) -> String {
        guard case .string(let text) = value else { throw StorageJSON.NotPlain() }
        return text
    }

    static func bool(_ value: StorageJSON) throws(StorageJSON.NotPlain) -> Bool {
        guard case .bool(let flag) = value else { throw StorageJSON.NotPlain() }
        return flag
    }

    /// An integer spelled as one (`Int(_:)` takes digits only: a fraction or an exponent is the
    /// decoder's to judge).
    static func int(_ value: StorageJSON) throws(StorageJSON.NotPlain) -> Int {
        guard case .number(let text) = value, let number = Int(text) else { throw StorageJSON.NotPlain() }
        return number
    }

    static func uint64(_ value: StorageJSON) throws(StorageJSON.NotPlain) -> UInt64 {
        guard case .number(let text) = value, let number = UInt64(text) else { throw StorageJSON.NotPlain() }
        return number
    }

    /// A number `Double(_:)` reads exactly as the decoder does: a normal double, or a zero spelled
    /// with zeros. An underflow (`2.5e-900` reads as 0 here; Foundation refuses it), a subnormal or
    /// an overflow is the decoder's to judge.
    static func double(_ value: StorageJSON) throws(StorageJSON.NotPlain) -> Double {
        guard case .number(let text) = value, let number = Double(text) else { throw StorageJSON.NotPlain() }
        if number.isNormal { return number }
        let mantissa = text.utf8.prefix { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") }
        guard number == 0,
            mantissa.allSatisfy({ $0 == UInt8(ascii: "0") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { throw StorageJSON.NotPlain() }
        return number
    }

    static func array<T>(
        _ element: @escaping (StorageJSON) throws(StorageJSON.NotPlain) -> T
    )
        -> (StorageJSON) throws(StorageJSON.NotPlain) -> [T]
    {
        { value throws(StorageJSON.NotPlain) in
            guard case .array(let values) = value else { throw StorageJSON.NotPlain() }
            var result: [T] = []
            result.reserveCapacity(values.count)
            for value in values { result.append(try element(value)) }
            return result
        }
    }

    static func dictionary<T>(
        _ element: @escaping (StorageJSON) throws(StorageJSON.NotPlain) -> T
    )
        -> (StorageJSON) throws(StorageJSON.NotPlain) -> [String: T]
    {
        { value throws(StorageJSON.NotPlain) in
            guard case .object(let members) = value else { throw StorageJSON.NotPlain() }
            var result: [String: T] = [:]
            result.reserveCapacity(members.count)
            for member in members { result[member.key] = try element(member.value) }
            return result
        }
    }

    /// A `String`-backed enumeration, as its synthesized `Codable` reads it.
    static func raw<T: RawRepresentable>(_ type: T.Type) -> (StorageJSON) throws(StorageJSON.NotPlain) -> T
    where T.RawValue == String {
        { value throws(StorageJSON.NotPlain) in
            guard let known = T(rawValue: try string(value)) else { throw StorageJSON.NotPlain() }
            return known
        }
    }
}

extension StoredSession {
    /// The stored session from the plain reader's value.
    init(reading value: StorageJSON) throws(StorageJSON.NotPlain) {
        typealias F = StorageFields
        let fields = try F(value)
        format = try fields.required("format", F.int)
        id = try fields.required("id", F.string)
        paymentSid = try fields.optional("paymentSid", F.string)
        callbackSecretHash = try fields.required("callbackSecretHash", F.string)
        inFlight = try fields.required("inFlight", F.dictionary(F.string))
        callSid = try fields.required("callSid", F.string)
        options = try fields.required("options") { value throws(StorageJSON.NotPlain) in
            try StoredOptions(reading: value)
        }
        items = try fields.required(
            "items", F.dictionary { value throws(StorageJSON.NotPlain) in try StoredItem(reading: value) })
        required = try fields.required("required", F.array(F.string))
        requiredFromTwilio = try fields.required("requiredFromTwilio", F.bool)
        requiredReportedAt = try fields.optional("requiredReportedAt", F.double)
        unrecognizedRequired = try fields.required("unrecognizedRequired", F.array(F.string))
        phase = try fields.required("phase") { value throws(StorageJSON.NotPlain) in try StoredPhase(reading: value) }
        cardType = try fields.optional("cardType", F.string)
        lastError = try fields.optional("lastError", F.string)
        lastRequestError = try fields.optional("lastRequestError", F.string)
        createdAt = try fields.required("createdAt", F.double)
        updatedAt = try fields.required("updatedAt", F.double)
        version = try fields.required("version", F.uint64)
        owner = try fields.optional("owner") { value throws(StorageJSON.NotPlain) in
            let owner = try F(value)
            return StoredOwner(
                principal: try owner.required("principal", F.string), tenant: try owner.optional("tenant", F.string))
        }
        charge = try fields.optional("charge") { value throws(StorageJSON.NotPlain) in
            let charge = try F(value)
            return StoredCharge(
                countedOn: try charge.optional("countedOn", F.string),
                fromAmountDue: try charge.required("fromAmountDue", F.bool))
        }
        reference = try fields.optional("reference", F.string)
        recordings = try fields.optional("recordings") { value throws(StorageJSON.NotPlain) in
            let recordings = try F(value)
            return StoredRecordings(
                state: try recordings.required("state", F.string),
                recordings: try recordings.required("recordings", F.array(F.string)),
                reason: try recordings.optional("reason", F.string))
        }
    }

    /// The session in the storage format, keys sorted as `JSONEncoder`'s `.sortedKeys` sorts them
    /// (and PostgreSQL's `jsonb` sorts them again its own way); `nil` when a string would need an
    /// escape (Foundation's encoder writes those).
    func plainJSON() -> [UInt8]? {
        var writer = StorageJSONWriter()
        do throws(StorageJSON.NotPlain) {
            try writer.object { w throws(StorageJSON.NotPlain) in
                try w.field("callSid", string: callSid)
                try w.field("callbackSecretHash", string: callbackSecretHash)
                try w.field("cardType", string: cardType)
                if let charge {
                    try w.field("charge") { w throws(StorageJSON.NotPlain) in
                        try w.field("countedOn", string: charge.countedOn)
                        try w.field("fromAmountDue", bool: charge.fromAmountDue)
                    }
                }
                try w.field("createdAt", double: createdAt)
                try w.field("format", int: format)
                try w.field("id", string: id)
                try w.field("inFlight", strings: inFlight)
                try w.field("items") { w throws(StorageJSON.NotPlain) in
                    for key in items.keys.sorted(by: StorageJSONWriter.keyOrder) {
                        try w.field(key) { w throws(StorageJSON.NotPlain) in try items[key]!.write(to: &w) }
                    }
                }
                try w.field("lastError", string: lastError)
                try w.field("lastRequestError", string: lastRequestError)
                try w.field("options") { w throws(StorageJSON.NotPlain) in try options.write(to: &w) }
                if let owner {
                    try w.field("owner") { w throws(StorageJSON.NotPlain) in
                        try w.field("principal", string: owner.principal)
                        try w.field("tenant", string: owner.tenant)
                    }
                }
                try w.field("paymentSid", string: paymentSid)
                try w.field("phase") { w throws(StorageJSON.NotPlain) in try phase.write(to: &w) }
                if let recordings {
                    try w.field("recordings") { w throws(StorageJSON.NotPlain) in
                        try w.field("reason", string: recordings.reason)
                        try w.field("recordings", strings: recordings.recordings)
                        try w.field("state", string: recordings.state)
                    }
                }
                try w.field("reference", string: reference)
                try w.field("required", strings: required)
                try w.field("requiredFromTwilio", bool: requiredFromTwilio)
                try w.field("requiredReportedAt", double: requiredReportedAt)
                try w.field("unrecognizedRequired", strings: unrecognizedRequired)
                try w.field("updatedAt", double: updatedAt)
                try w.field("version", uint64: version)
            }
        } catch {
            return nil
        }
        return writer.bytes
    }
}

extension StoredItem {
    init(reading value: StorageJSON) throws(StorageJSON.NotPlain) {
        typealias F = StorageFields
        let fields = try F(value)
        state = try fields.required("state", F.string)
        masked = try fields.optional("masked", F.string)
        errorType = try fields.optional("errorType", F.string)
        failedAttempts = try fields.required("failedAttempts", F.int)
        requests = try fields.required("requests", F.int)
        attemptStart = try fields.optional("attemptStart", F.double)
        lastPartialResult = try fields.optional("lastPartialResult", F.bool)
    }

    func write(to w: inout StorageJSONWriter) throws(StorageJSON.NotPlain) {
        try w.field("attemptStart", double: attemptStart)
        try w.field("errorType", string: errorType)
        try w.field("failedAttempts", int: failedAttempts)
        try w.field("lastPartialResult", bool: lastPartialResult)
        try w.field("masked", string: masked)
        try w.field("requests", int: requests)
        try w.field("state", string: state)
    }
}

extension StoredPhase {
    init(reading value: StorageJSON) throws(StorageJSON.NotPlain) {
        typealias F = StorageFields
        let fields = try F(value)
        name = try fields.required("name", F.string)
        current = try fields.optional("current", F.string)
        result = try fields.optional("result", F.string)
        confirmationCode = try fields.optional("confirmationCode", F.string)
        token = try fields.optional("token", F.string)
        profileId = try fields.optional("profileId", F.string)
        reason = try fields.optional("reason", F.string)
        paymentError = try fields.optional("paymentError", F.string)
        payErrorCode = try fields.optional("payErrorCode", F.int)
        connectorError = try fields.optional("connectorError", F.string)
    }

    func write(to w: inout StorageJSONWriter) throws(StorageJSON.NotPlain) {
        try w.field("confirmationCode", string: confirmationCode)
        try w.field("connectorError", string: connectorError)
        try w.field("current", string: current)
        try w.field("name", string: name)
        try w.field("payErrorCode", int: payErrorCode)
        try w.field("paymentError", string: paymentError)
        try w.field("profileId", string: profileId)
        try w.field("reason", string: reason)
        try w.field("result", string: result)
        try w.field("token", string: token)
    }
}

extension StoredOptions {
    init(reading value: StorageJSON) throws(StorageJSON.NotPlain) {
        typealias F = StorageFields
        let fields = try F(value)
        chargeAmount = try fields.optional("chargeAmount", F.string)
        currency = try fields.optional("currency", F.string)
        description = try fields.optional("description", F.string)
        paymentConnector = try fields.optional("paymentConnector", F.string)
        paymentMethod = try fields.optional("paymentMethod", F.raw(PaymentMethod.self))
        tokenType = try fields.optional("tokenType", F.raw(TokenType.self))
        securityCode = try fields.optional("securityCode", F.bool)
        postalCode = try fields.optional("postalCode", F.bool)
        minPostalCodeLength = try fields.optional("minPostalCodeLength", F.int)
        validCardTypes = try fields.optional("validCardTypes", F.array(F.raw(CardType.self)))
        timeout = try fields.optional("timeout", F.int)
        bankAccountType = try fields.optional("bankAccountType", F.raw(BankAccountType.self))
        parameters = try fields.optional("parameters") { value throws(StorageJSON.NotPlain) in
            try F.dictionary { value throws(StorageJSON.NotPlain) in
                let parameter = try F(value)
                return StoredParameter(
                    string: try parameter.optional("string", F.string),
                    number: try parameter.optional("number", F.string),
                    bool: try parameter.optional("bool", F.bool))
            }(value)
        }
        input = try fields.optional("input", F.string)
        confirmation = try fields.optional("confirmation", F.bool)
        requireMatchingInputs = try fields.optional("requireMatchingInputs", F.array(F.raw(MatchableInput.self)))
    }

    func write(to w: inout StorageJSONWriter) throws(StorageJSON.NotPlain) {
        try w.field("bankAccountType", string: bankAccountType?.rawValue)
        try w.field("chargeAmount", string: chargeAmount)
        try w.field("confirmation", bool: confirmation)
        try w.field("currency", string: currency)
        try w.field("description", string: description)
        try w.field("input", string: input)
        try w.field("minPostalCodeLength", int: minPostalCodeLength)
        if let parameters {
            try w.field("parameters") { w throws(StorageJSON.NotPlain) in
                for key in parameters.keys.sorted(by: StorageJSONWriter.keyOrder) {
                    let parameter = parameters[key]!
                    try w.field(key) { w throws(StorageJSON.NotPlain) in
                        try w.field("bool", bool: parameter.bool)
                        try w.field("number", string: parameter.number)
                        try w.field("string", string: parameter.string)
                    }
                }
            }
        }
        try w.field("paymentConnector", string: paymentConnector)
        try w.field("paymentMethod", string: paymentMethod?.rawValue)
        try w.field("postalCode", bool: postalCode)
        if let requireMatchingInputs {
            try w.field("requireMatchingInputs", strings: requireMatchingInputs.map(\.rawValue))
        }
        try w.field("securityCode", bool: securityCode)
        try w.field("timeout", int: timeout)
        try w.field("tokenType", string: tokenType?.rawValue)
        if let validCardTypes { try w.field("validCardTypes", strings: validCardTypes.map(\.rawValue)) }
    }
}

extension StoredParameter {
    init(string: String?, number: String?, bool: Bool?) {
        self.string = string
        self.number = number
        self.bool = bool
    }
}

// MARK: - Writing

/// Writes compact JSON as `JSONEncoder` with `.sortedKeys` and `.withoutEscapingSlashes` does,
/// for strings that need no escape; the caller writes the keys in order.
struct StorageJSONWriter {
    var bytes: [UInt8] = []
    private var first = true

    init() {
        bytes.reserveCapacity(1024)
    }

    /// The order `JSONEncoder`'s `.sortedKeys` puts keys in on Linux (swift-foundation): `String`'s
    /// own, neither numeric nor case-insensitive (`StorageCodecTests` holds both to the same bytes
    /// with keys such as `a9`/`a10`, `B`/`b`, `e`/`é`). PostgreSQL's `jsonb` orders them again anyway.
    static func keyOrder(_ a: String, _ b: String) -> Bool {
        a < b
    }

    mutating func object(
        _ body: (inout StorageJSONWriter) throws(StorageJSON.NotPlain) -> Void
    )
        throws(StorageJSON.NotPlain)
    {
        bytes.append(UInt8(ascii: "{"))
        let outer = first
        first = true
        try body(&self)
        first = outer
        bytes.append(UInt8(ascii: "}"))
    }

    private mutating func key(_ name: String) throws(StorageJSON.NotPlain) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        try string(name)
    }

    private mutating func string(_ text: String) throws(StorageJSON.NotPlain) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            guard byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else {
                throw StorageJSON.NotPlain()
            }
            bytes.append(byte)
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func field(
        _ name: String, _ body: (inout StorageJSONWriter) throws(StorageJSON.NotPlain) -> Void
    ) throws(StorageJSON.NotPlain) {
        try key(name)
        bytes.append(UInt8(ascii: ":"))
        try object(body)
    }

    mutating func field(_ name: String, string value: String?) throws(StorageJSON.NotPlain) {
        guard let value else { return }
        try key(name)
        bytes.append(UInt8(ascii: ":"))
        try string(value)
    }

    mutating func field(_ name: String, strings values: [String]) throws(StorageJSON.NotPlain) {
        try key(name)
        bytes.append(contentsOf: ":[".utf8)
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            try string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func field(_ name: String, strings values: [String: String]) throws(StorageJSON.NotPlain) {
        try field(name) { w throws(StorageJSON.NotPlain) in
            for key in values.keys.sorted(by: Self.keyOrder) { try w.field(key, string: values[key]) }
        }
    }

    mutating func field(_ name: String, bool value: Bool?) throws(StorageJSON.NotPlain) {
        guard let value else { return }
        try key(name)
        bytes.append(contentsOf: (value ? ":true" : ":false").utf8)
    }

    mutating func field(_ name: String, int value: Int?) throws(StorageJSON.NotPlain) {
        guard let value else { return }
        try key(name)
        bytes.append(UInt8(ascii: ":"))
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ name: String, uint64 value: UInt64) throws(StorageJSON.NotPlain) {
        try key(name)
        bytes.append(UInt8(ascii: ":"))
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A double as `JSONEncoder` writes it: its shortest exact text, without a trailing `.0`.
    mutating func field(_ name: String, double value: Double?) throws(StorageJSON.NotPlain) {
        guard let value else { return }
        guard value.isFinite else { throw StorageJSON.NotPlain() }
        try key(name)
        bytes.append(UInt8(ascii: ":"))
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }
}
