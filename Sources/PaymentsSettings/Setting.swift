public import Configuration

/// One setting of agent-payments, declared once: its name (the environment variable, and the
/// key in a configuration file), the command-line option that also sets it, its default, whether
/// it is secret, and what it does. ``Setting/all`` lists every one; ``Settings`` reads them,
/// `agent-payments config check` prints them, and a test holds `Docs/configuration.md` to them.
public struct Setting: Sendable, Hashable, CustomStringConvertible {
    /// Where a setting is documented and listed.
    public enum Group: String, Sendable, CaseIterable {
        case twilio = "Twilio"
        case payments = "Payment defaults"
        case callbacks = "Callbacks and the public URL"
        case listener = "Listener bounds"
        case http = "MCP over HTTP"
        case policy = "Spending policy"
        case database = "Database"
        case webhooks = "Webhooks"
        case server = "Server"
        case simulator = "Simulator"
    }

    /// The environment variable's name, which is also the key in a configuration file.
    public let name: String
    /// The command-line option that sets it too (`--http`), if any; it wins over the others.
    public let option: String?
    /// The value used when no source sets it, if there is one that can be written down.
    public let defaultValue: String?
    /// The default as the documentation says it, when it is not a value (`a free port`).
    public let defaultText: String?
    /// Whether the value is a secret: never printed, never logged.
    public let isSecret: Bool
    public let group: Group
    /// What it does, in one sentence (the documentation's table).
    public let summary: String

    public init(
        _ name: String, option: String? = nil, default defaultValue: String? = nil, defaultText: String? = nil,
        secret: Bool = false, group: Group, _ summary: String
    ) {
        self.name = name
        self.option = option
        self.defaultValue = defaultValue
        self.defaultText = defaultText
        self.isSecret = secret
        self.group = group
        self.summary = summary
    }

    public var description: String { name }

    /// The key the configuration reader looks it up by: the name's words, lowercased
    /// (`CALLBACK_BASE_URL` → `callback.base.url`), which the environment provider turns back
    /// into the variable's name.
    public var key: ConfigKey {
        ConfigKey(name.lowercased().split(separator: "_").map(String.init))
    }

    /// The default as documented: the value, or the sentence that stands for it, or none.
    public var documentedDefault: String {
        if let defaultText { return defaultText }
        if let defaultValue { return "`\(defaultValue)`" }
        return "—"
    }

    public static func == (lhs: Setting, rhs: Setting) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

extension Setting {
    /// Every setting's name by group, wrapped at `width` columns: the `--help` text's list, made
    /// from the declaration so that it cannot fall behind it.
    public static func overview(width: Int = 100) -> String {
        Group.allCases.map { group in
            let names = all.filter { $0.group == group }.map(\.name)
            var lines: [String] = []
            var line = "  \(group.rawValue):"
            for (index, name) in names.enumerated() {
                let word = " " + name + (index < names.count - 1 ? "," : "")
                if line.count + word.count > width {
                    lines.append(line)
                    line = "   "
                }
                line += word
            }
            lines.append(line)
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
