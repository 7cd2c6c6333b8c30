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

extension Settings {
    /// What `agent-payments config check` prints on standard output — every setting's effective
    /// value (secrets redacted) and origin, then the verdict (`ok: …`, or with `json` a last line
    /// `{"ok": …}`) — and the first mistake, if any, with the sentence start-up would give.
    public func check(
        simulate: Bool, allowUnauthenticated: Bool, json: Bool
    ) -> (
        output: String, mistake: ConfigurationError?
    ) {
        let report = json ? reportJSON() : self.report()
        func verdict(_ object: [String: Any]) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        do {
            let configuration = try ServerConfiguration.load(
                self, simulate: simulate, allowUnauthenticated: allowUnauthenticated)
            let mode = configuration.simulated ? "the built-in simulator" : "Twilio"
            let transport = configuration.http.map { "MCP over HTTP on \($0.host):\($0.port)" } ?? "MCP over stdio"
            let store = configuration.database.map { "sessions in PostgreSQL at \($0)" } ?? "sessions in memory"
            let summary = "\(mode), \(transport), \(store)"
            return (report + (json ? verdict(["ok": true, "summary": summary]) : "ok: \(summary)\n"), nil)
        } catch {
            return (report + (json ? verdict(["ok": false, "error": error.description]) : ""), error)
        }
    }
}
