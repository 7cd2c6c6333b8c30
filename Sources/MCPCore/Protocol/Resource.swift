/// What a client sees of a resource in `resources/list` (`Resource` in the schema).
public struct ResourceDescriptor: Sendable, Equatable {
    public var uri: String
    public var name: String
    public var title: String?
    public var description: String?
    public var mimeType: String?

    public init(uri: String, name: String, title: String? = nil, description: String? = nil, mimeType: String? = nil) {
        self.uri = uri
        self.name = name
        self.title = title
        self.description = description
        self.mimeType = mimeType
    }

    public var json: JSONValue {
        .object(dropping: [
            "uri": .string(uri), "name": .string(name), "title": title.map(JSONValue.string),
            "description": description.map(JSONValue.string), "mimeType": mimeType.map(JSONValue.string),
        ])
    }
}

/// A resource with a fixed URI and the handler that reads it.
public struct Resource: Sendable {
    public var descriptor: ResourceDescriptor
    public var read: @Sendable (RequestContext) async throws -> [ResourceContents]

    public init(
        _ descriptor: ResourceDescriptor, read: @escaping @Sendable (RequestContext) async throws -> [ResourceContents]
    ) {
        self.descriptor = descriptor
        self.read = read
    }
}

/// A family of resources named by an RFC 6570 URI template, such as
/// `payment://{callSid}/{paymentSid}/status`, and the handler that reads one of them.
///
/// `read` receives the variables matched from the requested URI and returns `nil` when no
/// such resource exists. `list`, when given, enumerates the members that currently exist so
/// that `resources/list` can show them.
public struct ResourceTemplate: Sendable {
    public var template: URITemplate
    public var name: String
    public var title: String?
    public var description: String?
    public var mimeType: String?
    public var read:
        @Sendable (_ variables: [String: String], _ uri: String, RequestContext) async throws -> [ResourceContents]?
    /// Enumerates the members the requesting principal may see (``RequestContext/principal``).
    public var list: (@Sendable (RequestContext) async throws -> [ResourceDescriptor])?

    public init(
        _ template: URITemplate,
        name: String,
        title: String? = nil,
        description: String? = nil,
        mimeType: String? = nil,
        list: (@Sendable (RequestContext) async throws -> [ResourceDescriptor])? = nil,
        read:
            @escaping @Sendable (_ variables: [String: String], _ uri: String, RequestContext) async throws ->
            [ResourceContents]?
    ) {
        self.template = template
        self.name = name
        self.title = title
        self.description = description
        self.mimeType = mimeType
        self.list = list
        self.read = read
    }

    public var json: JSONValue {
        .object(dropping: [
            "uriTemplate": .string(template.text), "name": .string(name), "title": title.map(JSONValue.string),
            "description": description.map(JSONValue.string), "mimeType": mimeType.map(JSONValue.string),
        ])
    }
}
