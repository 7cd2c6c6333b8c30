import Synchronization

/// The method table: what each MCP method does, answered at once or in a task.
extension ServerConnection {
    // MARK: Method table

    /// Methods answered synchronously on the receiving thread; `nil` for those that need a
    /// task.
    func handleImmediately(method: String, params: JSONValue, context: RequestContext) -> Result<JSONValue, JSONRPCError>? {
        switch method {
        case "ping":
            return .success([:])
        case "initialize":
            return initialize(params: params)
        case "server/discover":
            return .success(.object(dropping: [
                "supportedVersions": .array(ProtocolVersion.modern.reversed().map(JSONValue.string)),
                "capabilities": server.capabilities(),
                "instructions": server.instructions.map(JSONValue.string),
            ]))
        case "logging/setLevel":
            guard let name = params["level"]?.stringValue, let level = LogLevel(rawValue: name) else {
                return .failure(.invalidParams("\"level\" must be one of \(LogLevel.spelledOut)"))
            }
            state.withLock { $0.legacyLogLevel = level }
            return .success([:])
        case "tools/list":
            let tools = server.registry.withLock { $0.tools.map(\.json) }
            return paginate(tools, key: "tools", params: params)
        case "prompts/list":
            let prompts = server.registry.withLock { $0.prompts.map(\.json) }
            return paginate(prompts, key: "prompts", params: params)
        case "resources/templates/list":
            let templates = server.registry.withLock { $0.templates.map(\.json) }
            return paginate(templates, key: "resourceTemplates", params: params)
        case "resources/subscribe", "resources/unsubscribe":
            guard let uri = params["uri"]?.stringValue else { return .failure(.invalidParams("\"uri\" (a string) is required")) }
            guard resourceExists(uri: uri) else { return .failure(ResourceNotFound.error(uri: uri)) }
            state.withLock { state in
                if method == "resources/subscribe" {
                    state.legacySubscriptions.insert(uri)
                } else {
                    state.legacySubscriptions.remove(uri)
                }
            }
            return .success([:])
        default:
            return nil
        }
    }

    func handleAsync(method: String, params: JSONValue, context: RequestContext) async throws -> JSONValue {
        switch method {
        case "tools/call": return try await callTool(params: params, context: context)
        case "resources/list": return try await listResources(params: params)
        case "resources/read": return try await readResource(params: params, context: context)
        case "prompts/get": return try await getPrompt(params: params, context: context)
        case "completion/complete": return try await complete(params: params, context: context)
        default: throw JSONRPCError.methodNotFound(method)
        }
    }

    func initialize(params: JSONValue) -> Result<JSONValue, JSONRPCError> {
        guard let requested = params["protocolVersion"]?.stringValue else {
            return .failure(.invalidParams("\"protocolVersion\" (a string) is required"))
        }
        let version = ProtocolVersion.legacy.contains(requested) ? requested : ProtocolVersion.latestLegacy
        let locked = state.withLock { state -> Bool in
            guard case .undecided = state.phase else { return false }
            state.phase = .legacy(version: version, clientInfo: Implementation(json: params["clientInfo"]),
                                  capabilities: params["capabilities"] ?? [:], initialized: false)
            return true
        }
        guard locked else { return .failure(.invalidRequest("initialize was already answered on this connection")) }
        return .success(.object(dropping: [
            "protocolVersion": .string(version),
            "capabilities": server.capabilities(),
            "serverInfo": server.info.json,
            "instructions": server.instructions.map(JSONValue.string),
        ]))
    }
}
