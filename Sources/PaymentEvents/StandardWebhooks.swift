public import Foundation
internal import Crypto

/// The key that signs one endpoint's webhooks, as Standard Webhooks serializes it: `whsec_`
/// followed by the base64 of 24 to 64 random bytes (a bare base64 secret is accepted too).
///
/// It never shows itself: its description, debug description and reflection are all
/// `<redacted>`, and parsing errors say what is wrong with a secret without quoting it.
/// ``encoded`` gives the `whsec_…` form, to show an operator once.
///
/// ```swift
/// let secret = try WebhookSecret(parsing: environment["AGENT_PAYMENTS_WEBHOOK_SECRET"] ?? "")
/// let headers = StandardWebhooks.headers(secret: secret, id: "evt_1", timestamp: 1_700_000_000, body: body)
/// ```
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The HMAC key.
    let key: [UInt8]

    /// The length of a key the specification allows, in bytes (192 to 512 bits).
    public static let keyLengths: ClosedRange<Int> = 24...64

    /// Reads `whsec_<base64>` or bare `<base64>` (padding optional; surrounding whitespace, such
    /// as the newline a file ends with, ignored).
    public init(parsing text: String) throws(WebhookSecretError) {
        var encoded = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        if encoded.hasPrefix("whsec_") { encoded = encoded.dropFirst("whsec_".count) }
        guard !encoded.isEmpty else { throw .empty }
        // Foundation insists on padding; the specification's own libraries do not.
        let padded = String(encoded) + String(repeating: "=", count: (4 - encoded.utf8.count % 4) % 4)
        guard encoded.utf8.count % 4 != 1, let bytes = Data(base64Encoded: padded) else { throw .notBase64 }
        try self.init(key: Array(bytes))
    }

    /// A secret of these key bytes.
    public init(key: [UInt8]) throws(WebhookSecretError) {
        guard Self.keyLengths.contains(key.count) else { throw .wrongKeyLength(bytes: key.count) }
        self.key = key
    }

    /// A new secret of 32 random bytes from the system's cryptographic generator.
    public static func generate() -> WebhookSecret {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        // 32 bytes is within keyLengths.
        return WebhookSecret(unchecked: key)
    }

    private init(unchecked key: [UInt8]) {
        self.key = key
    }

    /// `whsec_` and the base64 of the key: what the receiving app configures. Print it once, to
    /// the operator who asked for it; never log it.
    public var encoded: String { "whsec_" + Data(key).base64EncodedString() }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// Compares in time that depends only on the keys' lengths.
    public static func == (left: WebhookSecret, right: WebhookSecret) -> Bool {
        StandardWebhooks.constantTimeEqual(left.key, right.key)
    }
}

/// Why a webhook secret was refused. No case carries the secret or any part of it.
public enum WebhookSecretError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing after the optional `whsec_` prefix.
    case empty
    /// Not standard base64.
    case notBase64
    /// The key has this many bytes, outside ``WebhookSecret/keyLengths``.
    case wrongKeyLength(bytes: Int)

    public var description: String {
        switch self {
        case .empty:
            return
                "the webhook secret is empty; it is whsec_ followed by base64, such as whsec_$(openssl rand -base64 32)"
        case .notBase64:
            return
                "the webhook secret is not whsec_ followed by standard base64; a new one is whsec_$(openssl rand -base64 32)"
        case .wrongKeyLength(let bytes):
            return """
                the webhook secret's key is \(bytes) bytes long; Standard Webhooks keys are \(WebhookSecret.keyLengths.lowerBound) \
                to \(WebhookSecret.keyLengths.upperBound) random bytes, such as whsec_$(openssl rand -base64 32)
                """
        }
    }
}

/// The Standard Webhooks signature scheme (https://www.standardwebhooks.com), symmetric
/// version `v1`: HMAC-SHA256 under the endpoint's ``WebhookSecret`` of
/// `"\(id).\(timestamp).\(body)"`, where the timestamp is integer Unix seconds, sent base64
/// encoded as `v1,<signature>` in `webhook-signature`, beside `webhook-id` and
/// `webhook-timestamp`.
///
/// The sender signs each attempt anew (the timestamp is the attempt's, the id the event's);
/// the receiver checks the timestamp against its clock and compares in constant time. The id
/// must not contain `.` (the signed content would be ambiguous); ``verify(secret:id:timestamp:signatureHeader:body:now:tolerance:)``
/// refuses one that does.
public enum StandardWebhooks {
    /// The unique, stable id of the event (an idempotency key for the receiver).
    public static let idHeader = "webhook-id"
    /// The attempt's time in integer Unix seconds.
    public static let timestampHeader = "webhook-timestamp"
    /// One or more space-separated `version,signature` pairs.
    public static let signatureHeader = "webhook-signature"
    /// How far a timestamp may be from the receiver's clock, either way, by default.
    public static let defaultTolerance: Duration = .seconds(300)

    /// `v1,` and the base64 HMAC-SHA256 of `"\(id).\(timestamp).\(body)"`.
    public static func signature(secret: WebhookSecret, id: String, timestamp: Int, body: [UInt8]) -> String {
        "v1," + mac(key: secret.key, id: id, timestamp: String(timestamp), body: body).base64EncodedString()
    }

    /// The three headers of one delivery attempt: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature`, in that order.
    public static func headers(
        secret: WebhookSecret, id: String, timestamp: Int, body: [UInt8]
    ) -> [(name: String, value: String)] {
        [
            (idHeader, id),
            (timestampHeader, String(timestamp)),
            (signatureHeader, signature(secret: secret, id: id, timestamp: timestamp, body: body)),
        ]
    }

    /// Whether a received webhook is authentic and fresh: `timestamp` (the `webhook-timestamp`
    /// header as received) is integer Unix seconds within `tolerance` of `now`, either way, and
    /// one of the `v1` signatures in `signatureHeader` is that of `id`, `timestamp` and `body`.
    /// Signatures of other versions (`v1a`, say) are skipped; comparisons are constant-time.
    public static func verify(
        secret: WebhookSecret, id: String, timestamp: String, signatureHeader: String, body: [UInt8],
        now: Date = Date(), tolerance: Duration = defaultTolerance
    ) -> Bool {
        guard !id.isEmpty, !id.utf8.contains(UInt8(ascii: ".")) else { return false }
        // Digits only: no sign, no spaces, no fraction; a sent timestamp is written exactly so.
        guard (1...18).contains(timestamp.utf8.count), timestamp.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let seconds = Int64(timestamp)
        else { return false }
        let clock = now.timeIntervalSince1970
        guard clock.isFinite, abs(clock) < 1e17 else { return false }
        let nowSeconds = Int64(clock.rounded(.down))
        // Clamped, so that an enormous tolerance cannot overflow the arithmetic below.
        let window = min(max(0, tolerance.components.seconds), 1 << 40)
        guard seconds >= nowSeconds - window, seconds <= nowSeconds + window else { return false }

        let expected = Array(mac(key: secret.key, id: id, timestamp: timestamp, body: body).base64EncodedString().utf8)
        var matched = false
        for candidate in signatureHeader.utf8.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true) {
            guard let comma = candidate.firstIndex(of: UInt8(ascii: ",")),
                candidate[..<comma].elementsEqual("v1".utf8)
            else { continue }
            // Every candidate is compared, so the time taken does not say which one matched.
            if constantTimeEqual(candidate[candidate.index(after: comma)...], expected) { matched = true }
        }
        return matched
    }

    private static func mac(key: [UInt8], id: String, timestamp: String, body: [UInt8]) -> Data {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
        hmac.update(data: Array(id.utf8))
        hmac.update(data: [UInt8(ascii: ".")])
        hmac.update(data: Array(timestamp.utf8))
        hmac.update(data: [UInt8(ascii: ".")])
        hmac.update(data: body)
        return Data(hmac.finalize())
    }

    /// Compares two byte sequences in time that depends only on their lengths.
    static func constantTimeEqual(_ left: some Collection<UInt8>, _ right: some Collection<UInt8>) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(left, right) { difference |= a ^ b }
        return difference == 0
    }
}
