/// A prompt template the server offers, its arguments, and the handler that renders it.
///
/// Required arguments are checked before `render` runs; a missing one is a `-32602` error
/// that names it.
public struct Prompt: Sendable {
    public var name: String
    public var title: String?
    public var description: String?
    public var arguments: [PromptArgument]
    public var render: @Sendable (_ arguments: [String: String], RequestContext) async throws -> PromptResult

    public init(
        name: String,
        title: String? = nil,
        description: String? = nil,
        arguments: [PromptArgument] = [],
        render: @escaping @Sendable (_ arguments: [String: String], RequestContext) async throws -> PromptResult
    ) {
        self.name = name
        self.title = title
        self.description = description
        self.arguments = arguments
        self.render = render
    }

    public var json: JSONValue {
        .object(dropping: [
            "name": .string(name), "title": title.map(JSONValue.string),
            "description": description.map(JSONValue.string),
            "arguments": arguments.isEmpty ? nil : .array(arguments.map(\.json)),
        ])
    }
}

/// One argument of a ``Prompt``.
public struct PromptArgument: Sendable, Equatable {
    public var name: String
    public var title: String?
    public var description: String?
    public var required: Bool

    public init(name: String, title: String? = nil, description: String? = nil, required: Bool = false) {
        self.name = name
        self.title = title
        self.description = description
        self.required = required
    }

    public var json: JSONValue {
        .object(dropping: [
            "name": .string(name), "title": title.map(JSONValue.string),
            "description": description.map(JSONValue.string), "required": required ? .bool(true) : nil,
        ])
    }
}

/// A rendered prompt (`GetPromptResult` in the schema).
public struct PromptResult: Sendable, Equatable {
    public var description: String?
    public var messages: [PromptMessage]

    public init(description: String? = nil, messages: [PromptMessage]) {
        self.description = description
        self.messages = messages
    }

    public var json: JSONValue {
        .object(dropping: ["description": description.map(JSONValue.string), "messages": .array(messages.map(\.json))])
    }
}

/// One message of a rendered prompt.
public struct PromptMessage: Sendable, Equatable {
    /// Who speaks the message.
    public enum Role: String, Sendable { case user, assistant }

    public var role: Role
    public var content: ContentBlock

    public init(role: Role, content: ContentBlock) {
        self.role = role
        self.content = content
    }

    /// A message with one text block.
    public init(role: Role, text: String) {
        self.init(role: role, content: .text(text))
    }

    public var json: JSONValue { ["role": .string(role.rawValue), "content": content.json] }
}
