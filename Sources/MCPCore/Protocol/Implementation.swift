/// The name, title and version of a client or server (`Implementation` in the MCP schema).
public struct Implementation: Sendable, Equatable {
    /// A programmatic identifier, such as `agent-payments`.
    public var name: String
    /// A human-readable name for display.
    public var title: String?
    /// The software version.
    public var version: String
    /// A short description of what the software does.
    public var description: String?

    public init(name: String, title: String? = nil, version: String, description: String? = nil) {
        self.name = name
        self.title = title
        self.version = version
        self.description = description
    }

    /// Reads an implementation from its JSON form; `nil` without a name and version.
    public init?(json: JSONValue?) {
        guard let json, let name = json["name"]?.stringValue, let version = json["version"]?.stringValue else {
            return nil
        }
        self.init(
            name: name, title: json["title"]?.stringValue, version: version,
            description: json["description"]?.stringValue)
    }

    public var json: JSONValue {
        .object(dropping: [
            "name": .string(name), "title": title.map(JSONValue.string), "version": .string(version),
            "description": description.map(JSONValue.string),
        ])
    }
}
