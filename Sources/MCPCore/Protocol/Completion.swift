/// A `completion/complete` request: which argument of which prompt or resource template the
/// client wants suggestions for, and what has been typed so far.
public struct CompletionRequest: Sendable, Equatable {
    /// What the argument belongs to.
    public enum Reference: Sendable, Equatable {
        case prompt(name: String)
        case resourceTemplate(uri: String)
    }

    public var reference: Reference
    public var argumentName: String
    /// The partial value typed so far.
    public var value: String
    /// Arguments already resolved, for context-dependent suggestions.
    public var contextArguments: [String: String]

    public init(reference: Reference, argumentName: String, value: String, contextArguments: [String: String] = [:]) {
        self.reference = reference
        self.argumentName = argumentName
        self.value = value
        self.contextArguments = contextArguments
    }
}

/// Suggestions for a ``CompletionRequest``; at most 100 values are sent.
public struct Completion: Sendable, Equatable {
    public var values: [String]
    /// The total number of matches, when known.
    public var total: Int?
    public var hasMore: Bool

    public init(values: [String], total: Int? = nil, hasMore: Bool = false) {
        self.values = values
        self.total = total
        self.hasMore = hasMore
    }

    /// Truncated to the protocol's limit of 100 values, with `total`/`hasMore` set to say so.
    public var json: JSONValue {
        let limit = 100
        let sent = Array(values.prefix(limit))
        let more = hasMore || values.count > limit
        let count = total ?? (values.count > limit ? values.count : nil)
        return [
            "completion": .object(dropping: [
                "values": .array(sent.map(JSONValue.string)), "total": count.map { .integer(Int64($0)) },
                "hasMore": more ? .bool(true) : nil,
            ])
        ]
    }
}
