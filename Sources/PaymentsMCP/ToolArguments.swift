import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation

/// Tool arguments read by type. MCPCore has checked them against the tool's input schema, so
/// a value of the wrong type is a refusal with a message, never a crash.
struct ToolArguments {
    let values: [String: JSONValue]

    /// `values` without its `null` members: a strict-mode model sends `null` for what it means to omit.
    init(_ values: [String: JSONValue]) { self.values = values.filter { !$0.value.isNull } }

    func string(_ name: String) -> String? { values[name]?.stringValue }
    func bool(_ name: String) -> Bool? { values[name]?.boolValue }
    func int(_ name: String) -> Int? { values[name]?.intValue }
    func double(_ name: String) -> Double? { values[name]?.doubleValue }
    func strings(_ name: String) -> [String]? { values[name]?.arrayValue?.compactMap(\.stringValue) }

    /// The argument `name` parsed by `parse`, or a refusal naming it.
    func required<T>(_ name: String, _ parse: (String) -> T?) throws(FlowError) -> T {
        guard let text = string(name), let value = parse(text) else {
            throw .invalidArgument("\(name) is missing or malformed")
        }
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

    /// Twilio's `Parameter`: name/value pairs (`[{"name": "AVSName", "value": "Ada"}]`), a shape
    /// that survives strict schema conversion (a free-form object does not). A name given twice is
    /// refused.
    func connectorParameters(_ name: String) throws(FlowError) -> [String: ConnectorParameter]? {
        guard let pairs = values[name]?.arrayValue else { return nil }
        var parameters: [String: ConnectorParameter] = [:]
        for pair in pairs {
            guard let key = pair["name"]?.stringValue, !key.isEmpty, let raw = pair["value"] else {
                throw .invalidArgument("each \(name) entry needs a non-empty name and a value")
            }
            let value: ConnectorParameter
            switch raw {
            case .string(let text): value = .string(text)
            case .bool(let flag): value = .bool(flag)
            case .integer(let number): value = .number(String(number))
            case .double(let number) where number.isFinite: value = .number("\(number)")
            default: throw .invalidArgument("\(name) \(key): the value must be a string, number or boolean")
            }
            guard parameters.updateValue(value, forKey: key) == nil else {
                throw .invalidArgument("\(name) names \(key) twice")
            }
        }
        return parameters
    }
}
