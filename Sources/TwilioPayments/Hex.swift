/// Lowercase hexadecimal text: of bytes, and of fresh random bits (idempotency keys, callback
/// secrets, made-up credentials). One helper, so every random identifier is made the same way.
public enum Hex {
    /// `bytes` as two lowercase hex digits each.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// `bits` random bits (a multiple of 64) from the system's secure generator, as hex.
    public static func random(bits: Int = 128) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        for _ in 0..<(bits / 64) {
            withUnsafeBytes(of: (generator.next() as UInt64).bigEndian) { bytes += $0 }
        }
        return encode(bytes)
    }
}
