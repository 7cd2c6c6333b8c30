extension JSONValue {
    /// The compact JSON text of this value as UTF-8 bytes.
    ///
    /// Object keys are written in sorted order so that equal values always serialize to equal
    /// bytes; the output never contains a raw newline, so it is safe as one line of the stdio
    /// transport. Non-finite doubles, which JSON cannot express, are written as `null`.
    public func serializedBytes() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        write(to: &output)
        return output
    }

    /// The compact JSON text of this value.
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    /// Appends the compact JSON text of this value to `output`.
    public func write(to output: inout [UInt8]) {
        switch self {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .bool(let value):
            output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value):
            output.append(contentsOf: String(value).utf8)
        case .double(let value):
            if value.isFinite {
                output.append(contentsOf: value.description.utf8)
            } else {
                output.append(contentsOf: "null".utf8)
            }
        case .string(let value):
            Self.writeString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            var first = true
            for key in members.keys.sorted() {
                if !first { output.append(UInt8(ascii: ",")) }
                first = false
                Self.writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                members[key].unsafelyUnwrapped.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// What follows the backslash for each byte that JSON strings escape (`u` for the control
    /// bytes written `\u00XX`), `0` for the bytes written as they are.
    private static let escapes: [UInt8] = (0...255).map { byte in
        switch byte {
        case 0x22: UInt8(ascii: "\"")
        case 0x5C: UInt8(ascii: "\\")
        case 0x0A: UInt8(ascii: "n")
        case 0x0D: UInt8(ascii: "r")
        case 0x09: UInt8(ascii: "t")
        case 0..<0x20: UInt8(ascii: "u")
        default: 0
        }
    }

    static func writeString(_ string: String, to output: inout [UInt8]) {
        var copy = string
        // Native strings are contiguous UTF-8. The escaped length is counted first, so that a
        // string needing no escape is one copy and one that does is written in place into room
        // made for it at once (appending each run and each escape was most of the time a 2.5 KB
        // status result took to write: its text is JSON, with a quote every few bytes).
        copy.withUTF8 { bytes in
            Self.escapes.withUnsafeBufferPointer { escapes in
                var extra = 0
                for byte in bytes {
                    let escape = escapes[Int(byte)]
                    if escape != 0 { extra &+= escape == UInt8(ascii: "u") ? 5 : 1 }
                }
                output.reserveCapacity(output.count + bytes.count + extra + 2)
                output.append(UInt8(ascii: "\""))
                guard extra > 0 else {
                    output.append(contentsOf: bytes)
                    output.append(UInt8(ascii: "\""))
                    return
                }
                var at = output.count
                output.append(contentsOf: repeatElement(0, count: bytes.count + extra))
                output.withUnsafeMutableBufferPointer { out in
                    Self.hexDigits.withUnsafeBufferPointer { hex in
                        for byte in bytes {
                            let escape = escapes[Int(byte)]
                            if escape == 0 {
                                out[at] = byte
                                at &+= 1
                                continue
                            }
                            out[at] = 0x5C
                            out[at &+ 1] = escape
                            at &+= 2
                            if escape == UInt8(ascii: "u") {
                                out[at] = 0x30
                                out[at &+ 1] = 0x30
                                out[at &+ 2] = hex[Int(byte >> 4)]
                                out[at &+ 3] = hex[Int(byte & 0x0F)]
                                at &+= 4
                            }
                        }
                    }
                }
                output.append(UInt8(ascii: "\""))
            }
        }
    }
}
