public import MCPCore

/// The 2026-07-28 rules for the headers that mirror a request's body (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name`): pure functions of header values and the decoded message, so the
/// fuzzer reaches them without a socket.
public enum HeaderRules {
    /// The JSON-RPC code of a header that is missing, malformed or differs from the body.
    public static let headerMismatchCode = -32020

    /// Whether `value` may appear in a header as it is: visible ASCII, space and tab only
    /// (RFC 9110 field values).
    public static func isPlainFieldValue(_ value: some StringProtocol) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || (0x20...0x7E).contains($0) }
    }

    /// A header value with the Base64 sentinel (`=?base64?…?=`) decoded, or as it is; `nil`
    /// when it is malformed: characters outside the field-value set, or a sentinel whose content
    /// is not Base64 of UTF-8 text.
    public static func decodedValue(_ value: String) -> String? {
        guard isPlainFieldValue(value) else { return nil }
        let prefix = "=?base64?", suffix = "?="
        guard value.hasPrefix(prefix), value.hasSuffix(suffix),
            value.utf8.count >= prefix.utf8.count + suffix.utf8.count
        else {
            return value
        }
        let encoded = value.dropFirst(prefix.count).dropLast(suffix.count)
        guard let bytes = Base64.decode(encoded) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The body value `Mcp-Name` mirrors for `method`, if it mirrors one.
    public static func mirroredName(method: String, params: JSONValue?) -> (field: String, value: JSONValue?)? {
        switch method {
        case "tools/call", "prompts/get": return ("params.name", params?["name"])
        case "resources/read": return ("params.uri", params?["uri"])
        default: return nil
        }
    }

    /// Checks a modern request's headers against its body; the `HeaderMismatch` error when they
    /// do not agree, `nil` when they do. `protocolVersion` is the header's value (already known
    /// to be present), `meta` the body's `_meta` version.
    public static func mismatch(
        protocolVersion: String, method methodHeader: String?, name nameHeader: String?,
        message: JSONRPCMessage
    ) -> JSONRPCError? {
        let method: String, params: JSONValue?
        switch message {
        case .request(_, let requestMethod, let requestParams): (method, params) = (requestMethod, requestParams)
        case .notification(let notificationMethod, let notificationParams):
            (method, params) = (notificationMethod, notificationParams)
        case .result, .error: return nil
        }
        let bodyVersion = params?["_meta"]?[MetaKey.protocolVersion]
        guard let bodyVersion else {
            return error(
                "the MCP-Protocol-Version header says \(protocolVersion) but the body has no _meta.\"\(MetaKey.protocolVersion)\""
            )
        }
        guard bodyVersion == .string(protocolVersion) else {
            return error(
                "MCP-Protocol-Version header value '\(protocolVersion)' does not match body value '\(bodyVersion.stringValue ?? "non-string")'"
            )
        }
        guard case .request = message else { return nil } // notification headers are not defined
        guard let methodHeader else { return error("the Mcp-Method header is required") }
        guard isPlainFieldValue(methodHeader) else {
            return error("the Mcp-Method header contains characters outside visible ASCII")
        }
        guard methodHeader == method else {
            return error("Mcp-Method header value '\(methodHeader)' does not match body value '\(method)'")
        }
        guard let (field, bodyValue) = mirroredName(method: method, params: params) else { return nil }
        guard let nameHeader else { return error("the Mcp-Name header is required for \(method)") }
        guard let decoded = decodedValue(nameHeader) else {
            return error(
                "the Mcp-Name header is malformed (characters outside visible ASCII, or a bad =?base64?…?= value)")
        }
        guard bodyValue == .string(decoded) else {
            return error(
                "Mcp-Name header value '\(decoded)' does not match body value \(field) '\(bodyValue?.stringValue ?? "missing")'"
            )
        }
        return nil
    }

    static func error(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: headerMismatchCode, message: "Header mismatch: " + detail)
    }
}

/// Base64 (RFC 4648, standard alphabet, padding optional) without Foundation.
enum Base64 {
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0, bits = 0, padding = 0
        for byte in text.utf8 {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil } // data after padding
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        guard padding <= 2, bits < 6 else { return nil }
        return output
    }
}
