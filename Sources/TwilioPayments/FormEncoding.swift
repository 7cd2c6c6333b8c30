/// `application/x-www-form-urlencoded`, as Twilio sends and expects it: ordered pairs, names
/// may repeat, space as `+`, everything but unreserved characters percent-encoded.
public enum FormEncoding {
    /// Encodes ordered pairs into a body.
    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    /// Decodes a body into ordered pairs; `nil` when a percent escape is malformed or the
    /// result is not UTF-8.
    public static func decode(_ body: String) -> [(String, String)]? {
        // ASCII bodies (what Twilio sends: everything else is percent-encoded) by their bytes,
        // each a character of its own: splitting a String by characters was half of this
        // function's time, and this function a sixth of a callback's (Docs/benchmarks.md).
        if body.utf8.allSatisfy({ $0 < 0x80 }) {
            var body = body
            return body.withUTF8 { decode(ascii: $0) }
        }
        return decodeByCharacter(body)
    }

    /// An ASCII body's pairs: the same as ``decodeByCharacter(_:)`` gives for it.
    private static func decode(ascii bytes: UnsafeBufferPointer<UInt8>) -> [(String, String)]? {
        var pairs: [(String, String)] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                guard let name = unescape(bytes[start..<equals]) else { return nil }
                let value = equals < end ? unescape(bytes[(equals + 1)..<end]) : ""
                guard let value else { return nil }
                pairs.append((name, value))
            }
            start = end + 1
        }
        return pairs
    }

    /// Any body's pairs, split by characters (and the reference the byte way is tested against).
    static func decodeByCharacter(_ body: String) -> [(String, String)]? {
        var pairs: [(String, String)] = []
        for piece in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(parts[0].utf8) else { return nil }
            let value = parts.count > 1 ? unescape(parts[1].utf8) : ""
            guard let value else { return nil }
            pairs.append((name, value))
        }
        return pairs
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func escape(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                bytes.append(byte)
            case UInt8(ascii: " "):
                bytes.append(UInt8(ascii: "+"))
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func unescape<Bytes: Collection<UInt8>>(_ text: Bytes) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count)
        var iterator = text.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return validUTF8(bytes)
    }

    /// `bytes` as a string when they are UTF-8, else `nil`: what `String(validating:as:)` says,
    /// without its unspecialized path (it instantiated generic metadata on every call: a callback's
    /// every field paid for it). ASCII is valid as it is; other bytes are decoded and must come
    /// back unchanged (a repair would have replaced something).
    static func validUTF8(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        if bytes.allSatisfy({ $0 < 0x80 }) { return text }
        return text.utf8.elementsEqual(bytes) ? text : nil
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
