/// One JSON-RPC 2.0 message, as carried on one line of the stdio transport.
///
/// Decoding classifies a line exactly as JSON-RPC and MCP require: unparsable text is a
/// parse error, a batch (array) or a malformed envelope is an invalid request, and unknown
/// members are ignored.
public enum JSONRPCMessage: Sendable, Equatable {
    case request(id: RequestID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    case result(id: RequestID, result: JSONValue)
    /// An error response; `id` is `nil` when the failing message's id could not be read.
    case error(id: RequestID?, error: JSONRPCError)

    /// Why a line could not be decoded, with the id to answer to when one was readable.
    public struct DecodingFailure: Error, Sendable, Equatable {
        public var id: RequestID?
        public var error: JSONRPCError
    }

    /// Decodes one message from a line of UTF-8 (without its newline).
    public static func decode(_ line: some Collection<UInt8>) -> Result<JSONRPCMessage, DecodingFailure> {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: line)
        } catch {
            return .failure(DecodingFailure(id: nil, error: .parseError(error.description)))
        }
        return decode(value)
    }

    /// Decodes one message from an already parsed JSON value.
    public static func decode(_ value: JSONValue) -> Result<JSONRPCMessage, DecodingFailure> {
        guard case .object(let members) = value else {
            if case .array = value {
                return .failure(
                    DecodingFailure(
                        id: nil,
                        error: .invalidRequest(
                            "JSON-RPC batches are not supported (MCP removed them in 2025-06-18); send one message per line"
                        )))
            }
            return .failure(
                DecodingFailure(
                    id: nil, error: .invalidRequest("a message must be a JSON object, got \(value.typeName)")))
        }
        let rawID = members["id"]
        let id = rawID.flatMap(RequestID.init)
        guard members["jsonrpc"] == .string("2.0") else {
            return .failure(DecodingFailure(id: id, error: .invalidRequest("\"jsonrpc\" must be \"2.0\"")))
        }
        if let methodValue = members["method"] {
            guard case .string(let method) = methodValue else {
                return .failure(DecodingFailure(id: id, error: .invalidRequest("\"method\" must be a string")))
            }
            let params = members["params"]
            if let rawID {
                guard let id else {
                    return .failure(
                        DecodingFailure(
                            id: nil,
                            error: .invalidRequest(
                                "\"id\" must be a string or an integer, got \(rawID.typeName)")))
                }
                if let params, params.objectValue == nil {
                    return .failure(
                        DecodingFailure(
                            id: id,
                            error: .invalidParams(
                                "\"params\" must be an object, got \(params.typeName)")))
                }
                return .success(.request(id: id, method: method, params: params))
            }
            if let params, params.objectValue == nil {
                return .failure(DecodingFailure(id: nil, error: .invalidParams("\"params\" must be an object")))
            }
            return .success(.notification(method: method, params: params))
        }
        if let result = members["result"] {
            guard let id else {
                return .failure(
                    DecodingFailure(id: nil, error: .invalidRequest("a response needs a string or integer \"id\"")))
            }
            return .success(.result(id: id, result: result))
        }
        if let errorValue = members["error"] {
            guard let error = JSONRPCError(json: errorValue) else {
                return .failure(
                    DecodingFailure(id: id, error: .invalidRequest("\"error\" needs an integer code and a message")))
            }
            return .success(.error(id: id, error: error))
        }
        return .failure(
            DecodingFailure(id: id, error: .invalidRequest("a message needs \"method\", \"result\" or \"error\"")))
    }

    /// The message as it appears on the wire.
    public var json: JSONValue {
        switch self {
        case .request(let id, let method, let params):
            return .object(dropping: ["jsonrpc": "2.0", "id": id.json, "method": .string(method), "params": params])
        case .notification(let method, let params):
            return .object(dropping: ["jsonrpc": "2.0", "method": .string(method), "params": params])
        case .result(let id, let result):
            return ["jsonrpc": "2.0", "id": id.json, "result": result]
        case .error(let id, let error):
            return ["jsonrpc": "2.0", "id": id?.json ?? .null, "error": error.json]
        }
    }

    /// The message as one line of UTF-8, newline included.
    public func encodedLine() -> [UInt8] {
        var bytes = json.serializedBytes()
        bytes.append(0x0A)
        return bytes
    }
}
