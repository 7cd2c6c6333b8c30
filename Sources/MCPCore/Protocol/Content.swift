/// One block of content in a tool result or a prompt message (`ContentBlock` in the schema).
public enum ContentBlock: Sendable, Equatable {
    case text(String)
    case image(base64: String, mimeType: String)
    case audio(base64: String, mimeType: String)
    /// A link to a resource the client may read.
    case resourceLink(uri: String, name: String, mimeType: String? = nil, description: String? = nil)
    /// A resource's contents embedded in the message.
    case resource(ResourceContents)

    public var json: JSONValue {
        switch self {
        case .text(let text):
            return ["type": "text", "text": .string(text)]
        case .image(let data, let mimeType):
            return ["type": "image", "data": .string(data), "mimeType": .string(mimeType)]
        case .audio(let data, let mimeType):
            return ["type": "audio", "data": .string(data), "mimeType": .string(mimeType)]
        case .resourceLink(let uri, let name, let mimeType, let description):
            return .object(dropping: [
                "type": "resource_link", "uri": .string(uri), "name": .string(name),
                "mimeType": mimeType.map(JSONValue.string), "description": description.map(JSONValue.string),
            ])
        case .resource(let contents):
            return ["type": "resource", "resource": contents.json]
        }
    }
}

/// The contents of one resource as returned by `resources/read`.
public struct ResourceContents: Sendable, Equatable {
    /// The body of a resource: text or base64 bytes.
    public enum Body: Sendable, Equatable {
        case text(String)
        case blob(base64: String)
    }

    public var uri: String
    public var mimeType: String?
    public var body: Body

    public init(uri: String, mimeType: String? = nil, text: String) {
        self.uri = uri
        self.mimeType = mimeType
        self.body = .text(text)
    }

    public init(uri: String, mimeType: String? = nil, blob base64: String) {
        self.uri = uri
        self.mimeType = mimeType
        self.body = .blob(base64: base64)
    }

    public var json: JSONValue {
        switch body {
        case .text(let text):
            return .object(dropping: [
                "uri": .string(uri), "mimeType": mimeType.map(JSONValue.string), "text": .string(text),
            ])
        case .blob(let data):
            return .object(dropping: [
                "uri": .string(uri), "mimeType": mimeType.map(JSONValue.string), "blob": .string(data),
            ])
        }
    }
}
