/// An RFC 6570 level-1 URI template (simple string expansion, `{name}`), which can both
/// expand variables into a URI and match a URI back into variables.
///
/// ```swift
/// let template = try URITemplate("payment://{callSid}/{paymentSid}/status")
/// template.expand(["callSid": "CA1", "paymentSid": "PK2"])   // "payment://CA1/PK2/status"
/// template.match("payment://CA1/PK2/status")                // ["callSid": "CA1", "paymentSid": "PK2"]
/// ```
///
/// A matched variable is non-empty and never spans `/`, `?` or `#`, so each variable names
/// one path segment; values are percent-decoded when matched and percent-encoded (all but
/// RFC 3986 unreserved characters) when expanded.
public struct URITemplate: Sendable, Hashable, CustomStringConvertible {
    /// Why a template string was rejected.
    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    enum Part: Sendable, Hashable {
        case literal(String)
        case variable(String)
    }

    /// The template as written.
    public let text: String
    let parts: [Part]

    /// The variable names in order of appearance.
    public var variableNames: [String] {
        parts.compactMap { if case .variable(let name) = $0 { return name } else { return nil } }
    }

    public var description: String { text }

    public init(_ text: String) throws(URITemplate.Error) {
        var parts: [Part] = []
        var literal = ""
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            if character == "}" {
                throw Error(description: "unmatched '}' in URI template \"\(text)\"")
            }
            guard character == "{" else {
                literal.append(character)
                continue
            }
            var name = ""
            var closed = false
            while let inner = iterator.next() {
                if inner == "}" {
                    closed = true
                    break
                }
                name.append(inner)
            }
            guard closed else { throw Error(description: "unterminated '{' in URI template \"\(text)\"") }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw Error(
                    description:
                        "unsupported expression {\(name)} in URI template \"\(text)\": only simple {name} variables are supported"
                )
            }
            if case .variable = parts.last, literal.isEmpty {
                throw Error(
                    description: "adjacent variables in URI template \"\(text)\" cannot be matched unambiguously")
            }
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal = ""
            }
            parts.append(.variable(name))
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.text = text
        self.parts = parts
    }

    /// The URI for `variables`; a missing variable expands to the empty string, as RFC 6570
    /// says for undefined values.
    public func expand(_ variables: [String: String]) -> String {
        var result = ""
        for part in parts {
            switch part {
            case .literal(let literal): result += literal
            case .variable(let name): result += Self.percentEncode(variables[name] ?? "")
            }
        }
        return result
    }

    /// The variables if `uri` is a member of this template's family; `nil` otherwise.
    public func match(_ uri: String) -> [String: String]? {
        var variables: [String: String] = [:]
        var remaining = Substring(uri)
        var index = 0
        while index < parts.count {
            switch parts[index] {
            case .literal(let literal):
                guard remaining.hasPrefix(literal) else { return nil }
                remaining = remaining.dropFirst(literal.count)
                index += 1
            case .variable(let name):
                // A variable runs to the next literal (or the end) and never crosses a delimiter.
                let end: Substring.Index
                if index + 1 < parts.count, case .literal(let next) = parts[index + 1] {
                    guard let range = remaining.firstRange(of: next) else { return nil }
                    end = range.lowerBound
                } else {
                    end = remaining.endIndex
                }
                let raw = remaining[remaining.startIndex..<end]
                guard !raw.isEmpty, !raw.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }),
                    let decoded = Self.percentDecode(raw)
                else { return nil }
                variables[name] = decoded
                remaining = remaining[end...]
                index += 1
            }
        }
        return remaining.isEmpty ? variables : nil
    }

    private static let hex: [Character] = Array("0123456789ABCDEF")

    static func percentEncode(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.append(Character(UnicodeScalar(byte)))
            default:
                result.append("%")
                result.append(hex[Int(byte >> 4)])
                result.append(hex[Int(byte & 0x0F)])
            }
        }
        return result
    }

    static func percentDecode(_ value: Substring) -> String? {
        guard value.contains("%") else { return String(value) }
        var bytes: [UInt8] = []
        var utf8 = value.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(hexValue), let low = utf8.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
