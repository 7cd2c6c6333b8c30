import Synchronization
/// Checks a JSON value against a JSON Schema (the 2020-12 keywords tool schemas use).
///
/// Supported: `type` (one or several), `enum`, `const`, `properties`, `required`,
/// `additionalProperties` (boolean or schema), `items`, `minItems`, `maxItems`,
/// `uniqueItems`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `allOf`, `anyOf`, `oneOf`, `not`,
/// and local `$ref` into `$defs`. Unknown keywords (`description`, `format`, `title`, ...)
/// are annotations and are ignored, as the specification allows.
///
/// Problems are reported with a path a person can follow, such as
/// `arguments.timeout: expected integer, got string`.
public struct JSONSchemaValidator: Sendable {
    /// One way the value does not match.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        /// Where in the value, such as `arguments.items[2].name`.
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    public let schema: JSONValue
    /// Whether messages quote the offending value (`got "abc"`); without, they name only its
    /// type (`got a string`), for servers whose arguments may carry what must not be echoed (a
    /// card number typed into the wrong field).
    public let echoesValues: Bool

    public init(schema: JSONValue, echoesValues: Bool = true) {
        self.schema = schema
        self.echoesValues = echoesValues
    }

    /// Every violation found (empty when the value conforms), with the root named `rootName`.
    public func validate(_ value: JSONValue, rootName: String = "value") -> [Violation] {
        var violations: [Violation] = []
        check(value, against: schema, path: rootName, depth: 0, into: &violations)
        return violations
    }

    private func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#") else { return nil }
        var node = schema
        for token in reference.dropFirst().split(separator: "/") {
            let key = String(token).replacing("~1", with: "/").replacing("~0", with: "~")
            if let child = node[key] {
                node = child
            } else if let index = Int(key), let element = node.arrayValue, element.indices.contains(index) {
                node = element[index]
            } else {
                return nil
            }
        }
        return node
    }

    private func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object):
            return true
        case ("number", .integer), ("number", .double): return true
        case ("integer", .integer): return true
        case ("integer", .double(let double)): return double.isFinite && double.rounded() == double
        default: return false
        }
    }

    // Bounded so that a hostile or cyclic `$ref` cannot exhaust the stack.
    private static let maximumDepth = 64

    private func check(
        _ value: JSONValue, against schema: JSONValue, path: String, depth: Int, into violations: inout [Violation]
    ) {
        guard depth < Self.maximumDepth else {
            violations.append(Violation(path: path, message: "schema nesting too deep to validate"))
            return
        }
        if case .bool(let accepts) = schema {
            if !accepts { violations.append(Violation(path: path, message: "no value is allowed here")) }
            return
        }
        guard case .object(let keywords) = schema else { return }

        if let reference = keywords["$ref"]?.stringValue {
            if let target = resolve(reference) {
                check(value, against: target, path: path, depth: depth + 1, into: &violations)
            } else {
                violations.append(Violation(path: path, message: "schema reference \(reference) cannot be resolved"))
            }
        }

        if let typeSpec = keywords["type"] {
            let types = typeSpec.arrayValue?.compactMap(\.stringValue) ?? typeSpec.stringValue.map { [$0] } ?? []
            if !types.isEmpty, !types.contains(where: { matches(value, type: $0) }) {
                violations.append(
                    Violation(
                        path: path, message: "expected \(types.joined(separator: " or ")), got \(describe(value))"))
                return
            }
        }
        if let allowed = keywords["enum"]?.arrayValue, !allowed.contains(where: { Self.equal($0, value) }) {
            let list = allowed.map { $0.serialized() }.joined(separator: ", ")
            violations.append(Violation(path: path, message: "must be one of \(list), got \(shown(value))"))
        }
        if let constant = keywords["const"], !Self.equal(constant, value) {
            violations.append(Violation(path: path, message: "must be \(constant.serialized()), got \(shown(value))"))
        }

        switch value {
        case .string(let string):
            let length = string.count
            if let minimum = keywords["minLength"]?.intValue, length < minimum {
                violations.append(
                    Violation(path: path, message: "must be at least \(minimum) characters long, got \(length)"))
            }
            if let maximum = keywords["maxLength"]?.intValue, length > maximum {
                violations.append(
                    Violation(path: path, message: "must be at most \(maximum) characters long, got \(length)"))
            }
            if let pattern = keywords["pattern"]?.stringValue {
                if let matched = CompiledPatterns.shared.matches(pattern, string) {
                    if !matched {
                        violations.append(Violation(path: path, message: "must match the pattern \(pattern)"))
                    }
                } else {
                    violations.append(
                        Violation(path: path, message: "schema pattern \(pattern) is not a valid regular expression"))
                }
            }
        case .integer, .double:
            let number = value.doubleValue!
            if let minimum = keywords["minimum"]?.doubleValue, number < minimum {
                violations.append(
                    Violation(path: path, message: "must be at least \(format(minimum)), got \(shown(value))"))
            }
            if let maximum = keywords["maximum"]?.doubleValue, number > maximum {
                violations.append(
                    Violation(path: path, message: "must be at most \(format(maximum)), got \(shown(value))"))
            }
            if let minimum = keywords["exclusiveMinimum"]?.doubleValue, number <= minimum {
                violations.append(
                    Violation(path: path, message: "must be greater than \(format(minimum)), got \(shown(value))"))
            }
            if let maximum = keywords["exclusiveMaximum"]?.doubleValue, number >= maximum {
                violations.append(
                    Violation(path: path, message: "must be less than \(format(maximum)), got \(shown(value))"))
            }
            if let divisor = keywords["multipleOf"]?.doubleValue, divisor > 0 {
                let quotient = number / divisor
                if (quotient - quotient.rounded()).magnitude > 1e-9 {
                    violations.append(Violation(path: path, message: "must be a multiple of \(format(divisor))"))
                }
            }
        case .array(let elements):
            if let minimum = keywords["minItems"]?.intValue, elements.count < minimum {
                violations.append(
                    Violation(path: path, message: "must have at least \(minimum) items, got \(elements.count)"))
            }
            if let maximum = keywords["maxItems"]?.intValue, elements.count > maximum {
                violations.append(
                    Violation(path: path, message: "must have at most \(maximum) items, got \(elements.count)"))
            }
            if keywords["uniqueItems"]?.boolValue == true, Set(elements).count != elements.count {
                violations.append(Violation(path: path, message: "items must be unique"))
            }
            if let itemSchema = keywords["items"] {
                for (offset, element) in elements.enumerated() {
                    check(element, against: itemSchema, path: "\(path)[\(offset)]", depth: depth + 1, into: &violations)
                }
            }
        case .object(let members):
            let properties = keywords["properties"]?.objectValue ?? [:]
            for name in keywords["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where members[name] == nil {
                violations.append(Violation(path: "\(path).\(name)", message: "is required but missing"))
            }
            for name in members.keys.sorted() {
                let member = members[name]!
                if let propertySchema = properties[name] {
                    check(member, against: propertySchema, path: "\(path).\(name)", depth: depth + 1, into: &violations)
                } else if let additional = keywords["additionalProperties"] {
                    if additional == .bool(false) {
                        let known = properties.keys.sorted().joined(separator: ", ")
                        violations.append(
                            Violation(path: "\(path).\(name)", message: "is not a known property (known: \(known))"))
                    } else {
                        check(member, against: additional, path: "\(path).\(name)", depth: depth + 1, into: &violations)
                    }
                }
            }
        default:
            break
        }

        if let all = keywords["allOf"]?.arrayValue {
            for subschema in all { check(value, against: subschema, path: path, depth: depth + 1, into: &violations) }
        }
        if let any = keywords["anyOf"]?.arrayValue, !any.contains(where: { conforms(value, to: $0, depth: depth) }) {
            violations.append(Violation(path: path, message: "does not match any of the allowed forms"))
        }
        if let one = keywords["oneOf"]?.arrayValue {
            let count = one.filter { conforms(value, to: $0, depth: depth) }.count
            if count != 1 {
                violations.append(
                    Violation(
                        path: path,
                        message: count == 0
                            ? "does not match any of the allowed forms" : "matches more than one of the exclusive forms"
                    ))
            }
        }
        if let negated = keywords["not"], conforms(value, to: negated, depth: depth) {
            violations.append(Violation(path: path, message: "matches a form that is not allowed"))
        }
    }

    private func conforms(_ value: JSONValue, to schema: JSONValue, depth: Int) -> Bool {
        var scratch: [Violation] = []
        check(value, against: schema, path: "", depth: depth + 1, into: &scratch)
        return scratch.isEmpty
    }

    /// JSON equality, where 1 and 1.0 are the same number.
    static func equal(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.integer, .double), (.double, .integer): return lhs.doubleValue == rhs.doubleValue
        case (.array(let left), .array(let right)):
            return left.count == right.count && zip(left, right).allSatisfy { equal($0, $1) }
        case (.object(let left), .object(let right)):
            return left.count == right.count
                && left.allSatisfy { key, value in right[key].map { equal(value, $0) } ?? false }
        default: return lhs == rhs
        }
    }

    /// The offending value as a message quotes it.
    private func shown(_ value: JSONValue) -> String {
        echoesValues ? value.serialized() : "a value of type \(value.typeName)"
    }

    private func describe(_ value: JSONValue) -> String {
        guard echoesValues else { return value.isNull ? "null" : "a value of type \(value.typeName)" }
        switch value {
        case .string(let string): return "string \"\(string.count > 40 ? String(string.prefix(40)) + "…" : string)\""
        case .null: return "null"
        default: return "\(value.typeName) \(value.serialized().prefix(40))"
        }
    }

    private func format(_ number: Double) -> String {
        number.rounded() == number && number.magnitude < 1e15 ? String(Int64(number)) : String(number)
    }
}

/// Every `pattern` compiled once per process: compiling a `Regex` from its source text costs more
/// than the rest of a validation (tool arguments are validated on every call). `Regex` is not
/// `Sendable`, so the compiled patterns never leave the lock: matching happens under it too
/// (a few microseconds; schemas are the server's own). A pattern that is only fixed-length
/// ASCII classes and literals between `^` and `$` (a Twilio SID's `^CA[0-9a-fA-F]{32}$`) is
/// matched without a regex engine (``FixedPattern``): a status call spent 6 % of its time in
/// `Regex.firstMatch` for its one SID.
final class CompiledPatterns: Sendable {
    static let shared = CompiledPatterns()

    enum Compiled {
        case fixed(FixedPattern)
        case regex(Regex<AnyRegexOutput>)
        case invalid
    }

    private let compiled = Mutex<[String: Compiled]>([:])

    /// Whether `string` contains a match of `pattern`, or `nil` if `pattern` is not a valid
    /// regular expression.
    func matches(_ pattern: String, _ string: String) -> Bool? {
        compiled.withLock { compiled in
            if compiled[pattern] == nil {
                if compiled.count >= 1024 { compiled.removeAll() } // a bound all the same
                compiled[pattern] =
                    if let fixed = FixedPattern(pattern) {
                        .fixed(fixed)
                    } else if let regex = try? Regex(pattern) {
                        .regex(regex)
                    } else {
                        .invalid
                    }
            }
            switch compiled[pattern]! {
            case .fixed(let fixed): return fixed.matches(string)
            case .regex(let regex): return (try? regex.firstMatch(in: string)) != nil
            case .invalid: return nil
            }
        }
    }
}

/// An anchored pattern of fixed length made of ASCII literals and bracketed ASCII classes, each
/// repeated a fixed number of times (`^PK[0-9a-fA-F]{32}$`, `^[A-Za-z]{3}$`): it matches a
/// string of exactly that many ASCII characters, position by position. Any other pattern
/// (alternation, groups, open quantifiers, escapes other than a literal punctuation mark, `$`
/// not last) is left to the regex engine (`init` returns `nil`).
struct FixedPattern: Sendable, Equatable {
    /// One position: the ASCII bytes allowed there, as a 128-bit set.
    struct ByteSet: Sendable, Equatable {
        var low: UInt64 = 0
        var high: UInt64 = 0

        mutating func insert(_ byte: UInt8) {
            if byte < 64 { low |= 1 << UInt64(byte) } else { high |= 1 << UInt64(byte - 64) }
        }

        func contains(_ byte: UInt8) -> Bool {
            byte < 64 ? low & (1 << UInt64(byte)) != 0 : byte < 128 && high & (1 << UInt64(byte - 64)) != 0
        }
    }

    let positions: [ByteSet]

    init?(_ pattern: String) {
        let bytes = Array(pattern.utf8)
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "^"), bytes.last == UInt8(ascii: "$") else { return nil }
        var index = 1
        let end = bytes.count - 1
        var positions: [ByteSet] = []
        func isPlainLiteral(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "/")
        }
        func isPunctuation(_ byte: UInt8) -> Bool { byte < 128 && !isPlainLiteral(byte) && byte > 0x20 }
        while index < end {
            var set = ByteSet()
            let byte = bytes[index]
            if byte == UInt8(ascii: "[") {
                index += 1
                guard index < end, bytes[index] != UInt8(ascii: "^") else { return nil }
                while index < end, bytes[index] != UInt8(ascii: "]") {
                    let low = bytes[index]
                    guard isPlainLiteral(low), low != UInt8(ascii: "-") else { return nil }
                    if index + 2 < end, bytes[index + 1] == UInt8(ascii: "-"), bytes[index + 2] != UInt8(ascii: "]") {
                        let high = bytes[index + 2]
                        guard isPlainLiteral(high), high != UInt8(ascii: "-"), low <= high else { return nil }
                        for member in low...high { set.insert(member) }
                        index += 3
                    } else {
                        set.insert(low)
                        index += 1
                    }
                }
                guard index < end, set != ByteSet() else { return nil }
                index += 1 // past "]"
            } else if byte == UInt8(ascii: "\\") {
                guard index + 1 < end, isPunctuation(bytes[index + 1]) else { return nil }
                set.insert(bytes[index + 1])
                index += 2
            } else if isPlainLiteral(byte) {
                set.insert(byte)
                index += 1
            } else {
                return nil
            }
            var count = 1
            if index < end, bytes[index] == UInt8(ascii: "{") {
                var digits = 0
                index += 1
                count = 0
                while index < end, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), digits < 4 {
                    count = count * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                    digits += 1
                    index += 1
                }
                guard digits > 0, index < end, bytes[index] == UInt8(ascii: "}") else { return nil }
                index += 1
            }
            positions += repeatElement(set, count: count)
        }
        self.positions = positions
    }

    func matches(_ string: String) -> Bool {
        var copy = string
        return copy.withUTF8 { bytes in
            guard bytes.count == positions.count else { return false }
            for (byte, allowed) in zip(bytes, positions) where !allowed.contains(byte) { return false }
            return true
        }
    }
}
