/// A tool the server offers: its description for the model, its argument and result
/// schemas, hints for the client, and the handler that runs it.
///
/// Arguments are checked against `inputSchema` before the handler runs, so a handler only
/// ever sees arguments of the declared shape; a mismatch becomes an `isError` result that
/// names the offending argument.
///
/// ```swift
/// Tool(name: "echo", description: "Repeats its text.",
///      inputSchema: ["type": "object", "properties": ["text": ["type": "string"]], "required": ["text"]]) { call in
///     ToolResult(text: call.arguments["text"]!.stringValue!)
/// }
/// ```
public struct Tool: Sendable {
    public var name: String
    public var title: String?
    public var description: String?
    /// A JSON Schema (2020-12) object describing the arguments.
    public var inputSchema: JSONValue
    /// A JSON Schema for `structuredContent`, when the tool returns structured results.
    public var outputSchema: JSONValue?
    public var annotations: ToolAnnotations?
    /// Scopes a principal must hold to see and call the tool (``Principal/scopes``): it is left
    /// out of the `tools/list` of a principal that lacks one, and a call is refused with
    /// `insufficient-scope`, naming them.
    public var requiredScopes: [String]
    public var handler: @Sendable (ToolCall) async throws -> ToolResult
    /// An answer the engine asks for first, on the thread that received the request, before it
    /// starts a task for ``handler``: for calls the tool can answer from memory without
    /// suspending (a status read from a published snapshot, say), which then cost no task, no
    /// thread hop and no wake-up. It returns `nil` when it cannot answer so; the call then runs in
    /// ``handler`` as usual. Arguments are validated and scopes checked before it runs, as for
    /// ``handler``; it must not block.
    public var immediate: (@Sendable (ToolCall) -> ToolResult?)?

    public init(
        name: String,
        title: String? = nil,
        description: String? = nil,
        inputSchema: JSONValue = ["type": "object"],
        outputSchema: JSONValue? = nil,
        annotations: ToolAnnotations? = nil,
        requiredScopes: [String] = [],
        immediate: (@Sendable (ToolCall) -> ToolResult?)? = nil,
        handler: @escaping @Sendable (ToolCall) async throws -> ToolResult
    ) {
        self.name = name
        self.title = title
        self.description = description
        self.inputSchema = inputSchema
        self.outputSchema = outputSchema
        self.annotations = annotations
        self.requiredScopes = requiredScopes
        self.handler = handler
        self.immediate = immediate
    }

    /// The tool as listed by `tools/list`.
    public var json: JSONValue {
        .object(dropping: [
            "name": .string(name), "title": title.map(JSONValue.string),
            "description": description.map(JSONValue.string),
            "inputSchema": inputSchema, "outputSchema": outputSchema, "annotations": annotations?.json,
        ])
    }
}

/// Hints that tell a client how a tool behaves (`ToolAnnotations` in the schema).
public struct ToolAnnotations: Sendable, Equatable {
    public var title: String?
    /// The tool does not change anything.
    public var readOnlyHint: Bool?
    /// The tool may make irreversible changes.
    public var destructiveHint: Bool?
    /// Calling the tool again with the same arguments has no further effect.
    public var idempotentHint: Bool?
    /// The tool reaches outside the server (a remote API, the internet).
    public var openWorldHint: Bool?

    public init(
        title: String? = nil, readOnlyHint: Bool? = nil, destructiveHint: Bool? = nil,
        idempotentHint: Bool? = nil, openWorldHint: Bool? = nil
    ) {
        self.title = title
        self.readOnlyHint = readOnlyHint
        self.destructiveHint = destructiveHint
        self.idempotentHint = idempotentHint
        self.openWorldHint = openWorldHint
    }

    public var json: JSONValue {
        .object(dropping: [
            "title": title.map(JSONValue.string), "readOnlyHint": readOnlyHint.map(JSONValue.bool),
            "destructiveHint": destructiveHint.map(JSONValue.bool),
            "idempotentHint": idempotentHint.map(JSONValue.bool),
            "openWorldHint": openWorldHint.map(JSONValue.bool),
        ])
    }
}

/// One invocation of a tool: its validated arguments and the request it belongs to.
public struct ToolCall: Sendable {
    /// The arguments, already checked against the tool's input schema.
    public var arguments: [String: JSONValue]
    /// Progress, logging, cancellation and client details for this request.
    public var context: RequestContext
}

/// What a tool returns (`CallToolResult` in the schema).
public struct ToolResult: Sendable, Equatable {
    public var content: [ContentBlock]
    /// Structured output matching the tool's `outputSchema`.
    public var structuredContent: JSONValue?
    /// Whether the tool failed; the content then explains why, for the model to read.
    public var isError: Bool
    /// Set by a tool that has itself checked `structuredContent` against its `outputSchema`
    /// (once for a value it hands out many times, say); the engine then skips its own check of
    /// every call. Not part of the wire format.
    public var structuredContentValidated: Bool

    public init(
        content: [ContentBlock], structuredContent: JSONValue? = nil, isError: Bool = false,
        structuredContentValidated: Bool = false
    ) {
        self.content = content
        self.structuredContent = structuredContent
        self.isError = isError
        self.structuredContentValidated = structuredContentValidated
    }

    /// A result with one text block.
    public init(text: String, structuredContent: JSONValue? = nil, isError: Bool = false) {
        self.init(content: [.text(text)], structuredContent: structuredContent, isError: isError)
    }

    /// A structured result whose text block is the serialized structure, for older clients and
    /// for clients that hand the model only text.
    public init(structured: JSONValue, isError: Bool = false) {
        self.init(content: [.text(structured.serialized())], structuredContent: structured, isError: isError)
    }

    /// A refusal every client reads alike: `isError`, one text block holding one JSON object, and
    /// the same object as `structuredContent`:
    /// `{"error": {"reason", "message", "retryable", "whatToDo", …details}, "message"}`.
    ///
    /// Voice frameworks keep only text blocks (and some ignore `isError`), so the refusal is
    /// JSON a model can parse, with a stable kebab-case `reason`, whether trying again unchanged
    /// may help, and what to do instead. `extra` adds top-level members (a `nextStep`, say).
    public static func refusal(
        reason: String, message: String, retryable: Bool, whatToDo: String? = nil,
        details: [String: JSONValue] = [:], extra: [String: JSONValue] = [:]
    ) -> ToolResult {
        var error = details
        error["reason"] = .string(reason)
        error["message"] = .string(message)
        error["retryable"] = .bool(retryable)
        if let whatToDo { error["whatToDo"] = .string(whatToDo) }
        var members = extra
        members["error"] = .object(error)
        members["message"] = .string(message)
        return ToolResult(structured: .object(members), isError: true)
    }

    public var json: JSONValue {
        .object(dropping: [
            "content": .array(content.map(\.json)), "structuredContent": structuredContent,
            "isError": isError ? .bool(true) : nil,
        ])
    }
}

/// Thrown by a tool handler to report a failure the model should see and can act on.
///
/// The engine turns it into a tool result with `isError: true` rather than a protocol error,
/// so the model can correct itself: `message` as the text with `structuredContent` when given,
/// else a ``ToolResult/refusal(reason:message:retryable:whatToDo:details:extra:)`` (one JSON
/// object) with reason `tool-error` and `message`.
public struct ToolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// Optional structured detail, returned as `structuredContent`.
    public var structuredContent: JSONValue?

    public init(_ message: String, structuredContent: JSONValue? = nil) {
        self.message = message
        self.structuredContent = structuredContent
    }

    public var description: String { message }
}
