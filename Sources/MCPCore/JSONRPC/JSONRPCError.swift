/// A JSON-RPC 2.0 error object: what a request failed with at the protocol level.
///
/// Handlers throw it to answer with a specific code; the engine builds the standard ones
/// (parse error, invalid request, unknown method, bad params) itself. Tool failures are not
/// protocol errors: they are tool results with `isError: true` (see ``ToolError``).
public struct JSONRPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The numeric code (negative for JSON-RPC and MCP codes).
    public var code: Int
    /// One sentence a person can act on.
    public var message: String
    /// Structured detail, when the code defines one.
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "JSON-RPC error \(code): \(message)" }

    /// The error object as it appears on the wire.
    public var json: JSONValue {
        .object(dropping: ["code": .integer(Int64(code)), "message": .string(message), "data": data])
    }

    /// Reads an error object from its JSON form.
    public init?(json: JSONValue) {
        guard let code = json["code"]?.intValue, let message = json["message"]?.stringValue else { return nil }
        self.init(code: code, message: message, data: json["data"])
    }
}

extension JSONRPCError {
    /// `-32700`: the line is not JSON.
    public static let parseErrorCode = -32700
    /// `-32600`: JSON, but not a valid JSON-RPC request.
    public static let invalidRequestCode = -32600
    /// `-32601`: no such method.
    public static let methodNotFoundCode = -32601
    /// `-32602`: the method exists but its params are wrong.
    public static let invalidParamsCode = -32602
    /// `-32603`: the server failed.
    public static let internalErrorCode = -32603
    /// `-32002`: resource not found (legacy era only; modern uses `-32602`).
    public static let legacyResourceNotFoundCode = -32002
    /// `-32021`: the request needs a client capability it did not declare (2026-07-28).
    public static let missingRequiredClientCapabilityCode = -32021
    /// `-32022`: the request's protocol version is not supported (2026-07-28).
    public static let unsupportedProtocolVersionCode = -32022

    public static func parseError(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: parseErrorCode, message: "Parse error: \(detail)")
    }

    public static func invalidRequest(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: invalidRequestCode, message: "Invalid request: \(detail)")
    }

    public static func methodNotFound(_ method: String, detail: String? = nil) -> JSONRPCError {
        JSONRPCError(
            code: methodNotFoundCode,
            message: "Method not found: \(method)" + (detail.map { " (\($0))" } ?? "")
        )
    }

    public static func invalidParams(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: invalidParamsCode, message: "Invalid params: \(detail)")
    }

    public static func internalError(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: internalErrorCode, message: "Internal error: \(detail)")
    }

    /// A resource that does not exist, for read handlers to throw. The engine sends it as
    /// `-32002` to legacy clients and `-32602` to 2026-07-28 clients, as each revision says.
    public static func resourceNotFound(uri: String) -> JSONRPCError {
        ResourceNotFound.error(uri: uri)
    }

    /// The 2026-07-28 `UnsupportedProtocolVersionError`, listing what the server does speak.
    public static func unsupportedProtocolVersion(
        requested: String, supported: [String], detail: String? = nil
    ) -> JSONRPCError {
        JSONRPCError(
            code: unsupportedProtocolVersionCode,
            message: "Unsupported protocol version" + (detail.map { ": \($0)" } ?? ""),
            data: ["requested": .string(requested), "supported": .array(supported.map(JSONValue.string))]
        )
    }
}
