/// A JSON-RPC request id: a string or an integer, echoed back exactly as received.
///
/// MCP forbids `null` ids on requests; a response to a message whose id could not be read
/// carries no id at all (`null` on the wire).
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case number(Int64)

    /// Reads an id from its JSON form; `nil` for anything but a string or an integer.
    public init?(_ value: JSONValue) {
        switch value {
        case .string(let string): self = .string(string)
        case .integer(let number): self = .number(number)
        default: return nil
        }
    }

    /// The id as it appears on the wire.
    public var json: JSONValue {
        switch self {
        case .string(let string): return .string(string)
        case .number(let number): return .integer(number)
        }
    }

    public var description: String {
        switch self {
        case .string(let string): return "\"\(string)\""
        case .number(let number): return String(number)
        }
    }
}
