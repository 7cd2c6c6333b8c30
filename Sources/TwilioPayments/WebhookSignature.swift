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
    /// An HMAC already keyed with the Auth Token: copying it skips the key schedule, which
    /// is a large share of the cost of one validation.
    private let keyed: HMAC<Insecure.SHA1>

    public init(authToken: Secret) {
        keyed = HMAC<Insecure.SHA1>(key: SymmetricKey(data: Data(authToken.revealed.utf8)))
    }

    /// The signature Twilio would send for `url` and `parameters` (base64).
    public func sign(url: String, parameters: [(String, String)]) -> String {
        String(decoding: Self.base64(mac(Self.signedBytes(url: url, parameters: parameters))), as: UTF8.self)
    }

    /// Whether `signature` is valid for a form-encoded callback to `url` with `parameters`.
    public func isValid(signature: String, url: String, parameters: [(String, String)]) -> Bool {
        guard signature.utf8.count == 28 else { return false }
        // The URL exactly as received is by far the most common match; variants only after.
        let message = Self.signedBytes(url: url, parameters: parameters)
        if Self.constantTimeEqual(Self.base64(mac(message)), signature.utf8) {
            return true
        }
        let parameterBytes = message[url.utf8.count...]
        for candidate in Self.urlVariants(url).dropFirst()
        where Self.constantTimeEqual(Self.base64(mac(Array(candidate.utf8) + parameterBytes)), signature.utf8) {
            return true
        }
        return false
    }

    /// Whether `signature` is valid for a JSON-body request: the URL (with its `bodySHA256`
    /// query parameter) is signed with no parameters, and that parameter must be the hex
    /// SHA-256 of `body`.
    public func isValid(signature: String, url: String, body: Data) -> Bool {
        guard let claimed = Self.queryValue(named: "bodySHA256", in: url) else { return false }
        let digest = Hex.encode(SHA256.hash(data: body))
        let hashMatches = Self.constantTimeEqual(Array(digest.utf8), Data(claimed.lowercased().utf8))
        return isValid(signature: signature, url: url, parameters: []) && hashMatches
    }

    /// The message Twilio signs, as UTF-8 bytes: the URL, then every name and value, sorted by
    /// name then value in code point (UTF-8 byte) order, with repeated identical pairs dropped.
    /// One buffer, so that the HMAC takes it in one update.
    static func signedBytes(url: String, parameters: [(String, String)]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(url.utf8.count + parameters.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
        bytes += url.utf8
        // Each name's first 16 UTF-8 bytes as two big-endian integers order almost every pair
        // with two integer comparisons; only ties fall back to comparing all the bytes. Byte
        // order is code point order, where String's own comparison would apply Unicode
        // equivalence. Sorting small keys also avoids copying (and retaining) the pairs.
        struct Key {
            var high: UInt64
            var low: UInt64
            var index: Int
        }
        var keys: [Key] = []
        keys.reserveCapacity(parameters.count)
        for (index, pair) in parameters.enumerated() {
            var name = pair.0
            let (high, low) = name.withUTF8(prefixKey)
            keys.append(Key(high: high, low: low, index: index))
        }
        keys.sort { left, right in
            if left.high != right.high { return left.high < right.high }
            if left.low != right.low { return left.low < right.low }
            let byName = compareBytes(parameters[left.index].0, parameters[right.index].0)
            return byName != 0 ? byName < 0 : compareBytes(parameters[left.index].1, parameters[right.index].1) < 0
        }
        var previous: Key?
        for key in keys {
            let index = key.index
            if let previous, previous.high == key.high, previous.low == key.low,
                compareBytes(parameters[previous.index].0, parameters[index].0) == 0,
                compareBytes(parameters[previous.index].1, parameters[index].1) == 0
            {
                continue
            }
            bytes += parameters[index].0.utf8
            bytes += parameters[index].1.utf8
            previous = key
        }
        return bytes
    }

    /// The first 16 bytes as two big-endian integers, zero-padded.
    private static func prefixKey(_ bytes: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64) {
        var prefix: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &prefix) { raw in
            if let base = bytes.baseAddress {
                raw.copyMemory(from: UnsafeRawBufferPointer(start: base, count: min(bytes.count, 16)))
            }
        }
        return (UInt64(bigEndian: prefix.0), UInt64(bigEndian: prefix.1))
    }

    /// Three-way comparison of the UTF-8 bytes of two strings.
    static func compareBytes(_ left: String, _ right: String) -> Int {
        if let result = left.utf8.withContiguousStorageIfAvailable({ leftBytes in
            right.utf8.withContiguousStorageIfAvailable { rightBytes -> Int in
                let common = min(leftBytes.count, rightBytes.count)
                if common > 0 {
                    let order = memcmp(leftBytes.baseAddress!, rightBytes.baseAddress!, common)
                    if order != 0 { return Int(order) }
                }
                return leftBytes.count - rightBytes.count
            }
        }), let result {
            return result
        }
        if left.utf8.elementsEqual(right.utf8) { return 0 }
        return left.utf8.lexicographicallyPrecedes(right.utf8) ? -1 : 1
    }

    private func mac(_ message: [UInt8]) -> HashedAuthenticationCode<Insecure.SHA1> {
        var hmac = keyed
        hmac.update(data: message)
        return hmac.finalize()
    }

    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding, without going through `Data`.
    static func base64(_ code: HashedAuthenticationCode<Insecure.SHA1>) -> [UInt8] {
        code.withUnsafeBytes { input in
            var output: [UInt8] = []
            output.reserveCapacity((input.count + 2) / 3 * 4)
            var index = 0
            while index + 3 <= input.count {
                let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                output += [
                    alphabet[Int(chunk >> 18 & 63)], alphabet[Int(chunk >> 12 & 63)], alphabet[Int(chunk >> 6 & 63)],
                    alphabet[Int(chunk & 63)],
                ]
                index += 3
            }
            let remaining = input.count - index
            if remaining > 0 {
                let chunk = UInt32(input[index]) << 16 | (remaining == 2 ? UInt32(input[index + 1]) << 8 : 0)
                output += [alphabet[Int(chunk >> 18 & 63)], alphabet[Int(chunk >> 12 & 63)]]
                output +=
                    remaining == 2
                    ? [alphabet[Int(chunk >> 6 & 63)], UInt8(ascii: "=")] : [UInt8(ascii: "="), UInt8(ascii: "=")]
            }
            return output
        }
    }

    /// Compares two byte sequences in time that depends only on their length.
    public static func constantTimeEqual(_ left: some Collection<UInt8>, _ right: some Collection<UInt8>) -> Bool {
        guard left.count == right.count else { return false }
        let fast = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in
                var difference: UInt8 = 0
                for index in 0..<leftBytes.count { difference |= leftBytes[index] ^ rightBytes[index] }
                return difference == 0
            }
        }
        if let fast, let fast { return fast }
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
            let authorityEnd =
                url[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
            let authority = url[authorityStart..<authorityEnd]
            rest = url[authorityEnd...]
            let hostStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
            if let colon = authority[hostStart...].lastIndex(of: ":"), !authority[colon...].contains("]"),
                authority[authority.index(after: colon)...].allSatisfy(\.isASCII),
                authority[authority.index(after: colon)...].allSatisfy(\.isNumber)
            {
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

/// How a callback path secret is made and kept. The secret is derived, never stored: an
/// HMAC-SHA256 of the session's id under a key only the servers hold (replicas share it), cut to
/// 128 bits. The store keeps only the secret's SHA-256, to find a session from a callback, so
/// a store (shared, backed up, read by operators) never holds what would let anyone post to a
/// session.
public enum CallbackSecretHash {
    /// The path secret of session `id` under `key`: 32 hex digits.
    public static func secret(for id: String, key: Secret) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data(id.utf8), using: SymmetricKey(data: Data(key.revealed.utf8)))
        return Hex.encode(mac.prefix(16))
    }

    /// The SHA-256 of `secret` as 64 lowercase hex digits.
    public static func of(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Data(secret.utf8)))
    }
}
