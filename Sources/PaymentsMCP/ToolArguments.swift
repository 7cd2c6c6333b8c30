import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation

/// Tool arguments read by type. MCPCore has checked them against the tool's input schema, so
/// a value of the wrong type is a refusal with a message, never a crash.
struct ToolArguments {
    let values: [String: JSONValue]

    init(_ values: [String: JSONValue]) { self.values = values }

    func string(_ name: String) -> String? { values[name]?.stringValue }
    func bool(_ name: String) -> Bool? { values[name]?.boolValue }
    func int(_ name: String) -> Int? { values[name]?.intValue }
    func double(_ name: String) -> Double? { values[name]?.doubleValue }
    func strings(_ name: String) -> [String]? { values[name]?.arrayValue?.compactMap(\.stringValue) }

    /// The argument `name` parsed by `parse`, or a refusal naming it.
    func required<T>(_ name: String, _ parse: (String) -> T?) throws(FlowError) -> T {
        guard let text = string(name), let value = parse(text) else { throw .invalidArgument("\(name) is missing or malformed") }
        return value
    }

    /// The optional argument `name` parsed by `parse`; a present but unparseable value is refused.
    func optional<T>(_ name: String, _ parse: (String) -> T?) throws(FlowError) -> T? {
        guard values[name] != nil else { return nil }
        return try required(name, parse)
    }

    /// A list of names each `parse` must accept, or `nil` when absent; an unknown one is
    /// refused as "<name>: unknown <noun> <value>".
    func list<T>(_ name: String, of noun: String, _ parse: (String) -> T?) throws(FlowError) -> [T]? {
        try strings(name).map { names throws(FlowError) in
            try names.map { value throws(FlowError) in
                guard let parsed = parse(value) else { throw .invalidArgument("\(name): unknown \(noun) \(value)") }
                return parsed
            }
        }
    }

    /// A charge amount exactly as given: a string is kept verbatim; a JSON number becomes its
    /// shortest decimal text (`9.99`, `10`), never rounded to a fixed number of places.
    func amount(_ name: String) throws(FlowError) -> String? {
        switch values[name] {
        case nil, .null?: return nil
        case .string(let text)?: return text.trimmingCharacters(in: .whitespaces)
        case .integer(let value)?: return String(value)
        case .double(let value)?:
            guard value.isFinite else { throw .invalidArgument("\(name) must be a finite number") }
            let text = "\(value)"
            return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
        default: throw .invalidArgument("\(name) must be a number or a decimal string")
        }
    }

    /// A flat JSON object of scalars (Twilio's `Parameter`).
    func connectorParameters(_ name: String) throws(FlowError) -> [String: ConnectorParameter]? {
        guard let object = values[name]?.objectValue else { return nil }
        var parameters: [String: ConnectorParameter] = [:]
        for (key, value) in object {
            switch value {
            case .string(let text): parameters[key] = .string(text)
            case .bool(let flag): parameters[key] = .bool(flag)
            case .integer(let number): parameters[key] = .number(String(number))
            case .double(let number) where number.isFinite: parameters[key] = .number("\(number)")
            default: throw .invalidArgument("\(name).\(key) must be a string, number or boolean (Twilio's Parameter is a flat JSON object)")
            }
        }
        return parameters
    }
}
