public import Foundation
internal import Crypto

/// Validates and computes `X-Twilio-Signature` (reference §6): HMAC-SHA1, keyed with the
/// account's primary Auth Token, over the full URL followed by every POST parameter name and
/// value sorted by name (code point order; repeated names contribute their distinct values in
/// order).
///
/// Validation accepts the URL as given, with its port removed, and with the scheme's default
/// port added, as Twilio's own validators do; the JSON-body variant also checks the
/// `bodySHA256` query parameter. Comparisons are constant-time.
public struct WebhookSignature: Sendable {
    private let key: SymmetricKey

    public init(authToken: Secret) {
        key = SymmetricKey(data: Data(authToken.revealed.utf8))
    }

    /// The signature Twilio would send for `url` and `parameters` (base64).
    public func sign(url: String, parameters: [(String, String)]) -> String {
        Data(mac(url: url, parameters: parameters)).base64EncodedString()
    }

    /// Whether `signature` is valid for a form-encoded callback to `url` with `parameters`.
    public func isValid(signature: String, url: String, parameters: [(String, String)]) -> Bool {
        guard let expected = Data(base64Encoded: signature), expected.count == Insecure.SHA1.byteCount else { return false }
        for candidate in Self.urlVariants(url) where Self.constantTimeEqual(mac(url: candidate, parameters: parameters), expected) {
            return true
        }
        return false
    }

    /// Whether `signature` is valid for a JSON-body request: the URL (with its `bodySHA256`
    /// query parameter) is signed with no parameters, and that parameter must be the hex
    /// SHA-256 of `body`.
    public func isValid(signature: String, url: String, body: Data) -> Bool {
        guard let claimed = Self.queryValue(named: "bodySHA256", in: url) else { return false }
        let digest = SHA256.hash(data: body).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
        let hashMatches = Self.constantTimeEqual(Array(digest.utf8), Data(claimed.lowercased().utf8))
        return isValid(signature: signature, url: url, parameters: []) && hashMatches
    }

    /// The message Twilio signs, as UTF-8 bytes.
    static func signedBytes(url: String, parameters: [(String, String)]) -> [UInt8] {
        var bytes = Array(url.utf8)
        let sorted = parameters.sorted { left, right in
            if left.0 != right.0 { return left.0.utf8.lexicographicallyPrecedes(right.0.utf8) }
            return left.1.utf8.lexicographicallyPrecedes(right.1.utf8)
        }
        var previous: (String, String)?
        for pair in sorted {
            if let previous, previous.0 == pair.0, previous.1 == pair.1 { continue }
            bytes += pair.0.utf8
            bytes += pair.1.utf8
            previous = pair
        }
        return bytes
    }

    private func mac(url: String, parameters: [(String, String)]) -> [UInt8] {
        Array(HMAC<Insecure.SHA1>.authenticationCode(for: Self.signedBytes(url: url, parameters: parameters), using: key))
    }

    static func constantTimeEqual(_ left: some Collection<UInt8>, _ right: some Collection<UInt8>) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(left, right) { difference |= a ^ b }
        return difference == 0
    }

    /// The URL as given, without its port, and with the default port, without duplicates.
    static func urlVariants(_ url: String) -> [String] {
        guard let parts = URLParts(url) else { return [url] }
        var variants = [url, parts.with(port: nil)]
        if parts.port == nil, let defaultPort = parts.defaultPort { variants.append(parts.with(port: defaultPort)) }
        var seen: Set<String> = []
        return variants.filter { seen.insert($0).inserted }
    }

    static func queryValue(named name: String, in url: String) -> String? {
        guard let query = url.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        let withoutFragment = query.split(separator: "#", maxSplits: 1).first.map(String.init) ?? ""
        return FormEncoding.decode(withoutFragment)?.first { $0.0 == name }?.1
    }

    /// A URL split around its port, keeping every other byte exactly as written.
    struct URLParts {
        var scheme: String
        var beforePort: Substring
        var port: String?
        var rest: Substring

        init?(_ url: String) {
            guard let schemeEnd = url.range(of: "://") else { return nil }
            scheme = String(url[..<schemeEnd.lowerBound]).lowercased()
            let authorityStart = schemeEnd.upperBound
            let authorityEnd = url[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
            let authority = url[authorityStart..<authorityEnd]
            rest = url[authorityEnd...]
            let hostStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
            if let colon = authority[hostStart...].lastIndex(of: ":"), !authority[colon...].contains("]"),
               authority[authority.index(after: colon)...].allSatisfy(\.isASCII),
               authority[authority.index(after: colon)...].allSatisfy(\.isNumber) {
                beforePort = url[..<colon]
                let digits = authority[authority.index(after: colon)...]
                port = digits.isEmpty ? nil : String(digits)
            } else {
                beforePort = url[..<authorityEnd]
                port = nil
            }
        }

        var defaultPort: String? {
            switch scheme {
            case "https": return "443"
            case "http": return "80"
            default: return nil
            }
        }

        func with(port: String?) -> String {
            String(beforePort) + (port.map { ":" + $0 } ?? "") + rest
        }
    }
}
