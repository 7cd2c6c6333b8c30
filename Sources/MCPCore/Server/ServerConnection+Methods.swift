import Synchronization

/// The method table: what each MCP method does, answered at once or in a task.
extension ServerConnection {
    // MARK: Method table

    /// How one method is served: at once on the receiving thread, or in a task of its own.
    enum MethodHandler: Sendable {
        case immediate(@Sendable (ServerConnection, JSONValue, RequestContext) -> Result<JSONValue, JSONRPCError>)
        case task(@Sendable (ServerConnection, JSONValue, RequestContext) async throws -> JSONValue)
    }

    /// The one table of every request method the engine serves (`subscriptions/listen` opens a
    /// stream and is handled apart).
    static let methods: [String: MethodHandler] = [
        "ping": .immediate { _, _, _ in .success([:]) },
        "initialize": .immediate { connection, params, _ in connection.initialize(params: params) },
        "server/discover": .immediate { connection, _, _ in
            .success(
                .object(dropping: [
                    "supportedVersions": .array(ProtocolVersion.modern.reversed().map(JSONValue.string)),
                    "capabilities": connection.server.capabilities(),
                    "instructions": connection.server.instructions.map(JSONValue.string),
                ]))
        },
        "logging/setLevel": .immediate { connection, params, _ in
            guard let name = params["level"]?.stringValue, let level = LogLevel(rawValue: name) else {
                return .failure(.invalidParams("\"level\" must be one of \(LogLevel.spelledOut)"))
            }
            connection.state.withLock { $0.legacyLogLevel = level }
            return .success([:])
        },
        "tools/list": .immediate { connection, params, context in
            let tools = connection.server.registry.withLock { registry in
                registry.tools.filter { context.principal.missing($0.requiredScopes).isEmpty }.map(\.json)
            }
            return connection.paginate(tools, key: "tools", params: params)
        },
        "prompts/list": .immediate { connection, params, _ in
            connection.paginate(
                connection.server.registry.withLock { $0.prompts.map(\.json) }, key: "prompts", params: params)
        },
        "resources/templates/list": .immediate { connection, params, _ in
            connection.paginate(
                connection.server.registry.withLock { $0.templates.map(\.json) }, key: "resourceTemplates",
                params: params)
        },
        "resources/subscribe": .immediate { connection, params, _ in
            connection.setSubscription(params: params, subscribed: true)
        },
        "resources/unsubscribe": .immediate { connection, params, _ in
            connection.setSubscription(params: params, subscribed: false)
        },
        "tools/call": .task { connection, params, context in
            try await connection.callTool(params: params, context: context)
        },
        "resources/list": .task { connection, params, context in
            try await connection.listResources(params: params, context: context)
        },
        "resources/read": .task { connection, params, context in
            try await connection.readResource(params: params, context: context)
        },
        "prompts/get": .task { connection, params, context in
            try await connection.getPrompt(params: params, context: context)
        },
        "completion/complete": .task { connection, params, context in
            try await connection.complete(params: params, context: context)
        },
    ]

    /// The answer of a method served at once; `nil` for those that need a task.
    func handleImmediately(
        method: String, params: JSONValue, context: RequestContext
    ) -> Result<JSONValue, JSONRPCError>? {
        guard case .immediate(let handler)? = Self.methods[method] else { return nil }
        return handler(self, params, context)
    }

    func handleAsync(method: String, params: JSONValue, context: RequestContext) async throws -> JSONValue {
        guard case .task(let handler)? = Self.methods[method] else { throw JSONRPCError.methodNotFound(method) }
        return try await handler(self, params, context)
    }

    /// `resources/subscribe` and `resources/unsubscribe` (legacy era).
    func setSubscription(params: JSONValue, subscribed: Bool) -> Result<JSONValue, JSONRPCError> {
        guard let uri = params["uri"]?.stringValue else {
            return .failure(.invalidParams("\"uri\" (a string) is required"))
        }
        guard resourceExists(uri: uri) else { return .failure(ResourceNotFound.error(uri: uri)) }
        state.withLock { state in
            if subscribed { state.legacySubscriptions.insert(uri) } else { state.legacySubscriptions.remove(uri) }
        }
        return .success([:])
    }

    func initialize(params: JSONValue) -> Result<JSONValue, JSONRPCError> {
        guard let requested = params["protocolVersion"]?.stringValue else {
            return .failure(.invalidParams("\"protocolVersion\" (a string) is required"))
        }
        let version = ProtocolVersion.legacy.contains(requested) ? requested : ProtocolVersion.latestLegacy
        let locked = state.withLock { state -> Bool in
            guard case .undecided = state.phase else { return false }
            state.phase = .legacy(
                version: version, clientInfo: Implementation(json: params["clientInfo"]),
                capabilities: params["capabilities"] ?? [:], initialized: false)
            return true
        }
        guard locked else { return .failure(.invalidRequest("initialize was already answered on this connection")) }
        return .success(
            .object(dropping: [
                "protocolVersion": .string(version),
                "capabilities": server.capabilities(),
                "serverInfo": server.info.json,
                "instructions": server.instructions.map(JSONValue.string),
            ]))
    }
}
