import Foundation

extension Settings {
    /// One line of `config check`: a setting, its value as shown (secrets redacted), and where it
    /// came from.
    public struct Line: Sendable, Equatable {
        public var name: String
        public var shown: String
        public var origin: String
    }

    /// The marker a secret's value is shown as.
    public static let redacted = "<redacted>"

    /// Every declared setting with its effective value: what a source set (a secret as
    /// ``redacted``), else the default, else `—`.
    public func lines() -> [Line] {
        Setting.all.map { setting in
            let origin = origin(of: setting)
            let shown: String
            if origin == .defaultValue {
                shown =
                    setting.defaultValue ?? setting.defaultText.map { $0.replacingOccurrences(of: "`", with: "") }
                    ?? "—"
            } else if setting.isSecret {
                shown = Self.redacted
            } else {
                shown = value(setting) ?? "—"
            }
            return Line(
                name: setting.name, shown: shown,
                origin: origin == .defaultValue && setting.defaultValue == nil && setting.defaultText == nil
                    ? "unset" : origin.description)
        }
    }

    /// ``lines()`` as an aligned table.
    public func report() -> String {
        let lines = lines()
        let nameWidth = lines.map(\.name.count).max() ?? 0
        let valueWidth = min(48, lines.map(\.shown.count).max() ?? 0)
        return lines.map { line in
            let value = line.shown.count > 48 ? String(line.shown.prefix(47)) + "…" : line.shown
            return line.name.padding(toLength: nameWidth + 2, withPad: " ", startingAt: 0)
                + value.padding(toLength: valueWidth + 2, withPad: " ", startingAt: 0) + line.origin
        }.joined(separator: "\n") + "\n"
    }

    /// ``lines()`` as one JSON object per line: `{"name": …, "value": …, "origin": …}`.
    public func reportJSON() -> String {
        lines().map { line in
            let object = ["name": line.name, "value": line.shown, "origin": line.origin]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }.joined(separator: "\n") + "\n"
    }
}
