import Foundation

extension Settings {
    /// A whole number in `range`, from the setting or its default; `expected` completes the
    /// error's "must be …".
    public func integer(
        _ setting: Setting, in range: ClosedRange<Int>, expected: String
    ) throws(ConfigurationError) -> Int {
        let text = value(setting) ?? ""
        guard let number = Int(text), range.contains(number) else {
            throw .invalidValue(variable: setting.name, value: text, expected: expected)
        }
        return number
    }

    /// A finite number in `range`, from the setting or its default.
    public func number(
        _ setting: Setting, in range: ClosedRange<Double>, expected: String
    ) throws(ConfigurationError) -> Double {
        let text = value(setting) ?? ""
        guard let number = Double(text), number.isFinite, range.contains(number) else {
            throw .invalidValue(variable: setting.name, value: text, expected: expected)
        }
        return number
    }

    /// `true`, `1`, `yes` or `false`, `0`, `no` (any case), from the setting or its default.
    public func flag(_ setting: Setting) throws(ConfigurationError) -> Bool {
        let text = value(setting) ?? ""
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw .invalidValue(variable: setting.name, value: text, expected: "true or false")
        }
    }

    /// One of `choices` (compared in lower case), from the setting or its default.
    public func choice(_ setting: Setting, among choices: [String]) throws(ConfigurationError) -> String {
        let text = value(setting) ?? ""
        guard choices.contains(text.lowercased()) else {
            throw .invalidValue(
                variable: setting.name, value: text,
                expected: "one of " + choices.joined(separator: ", "))
        }
        return text.lowercased()
    }
}
