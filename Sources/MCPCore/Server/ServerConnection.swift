import Synchronization

/// One client's connection to an ``MCPServer``: it decodes incoming lines, decides the
/// protocol era from the first message, runs each request concurrently, and writes every
/// response and notification through one ``MessageSink``.
///
/// `receive(_:)` is synchronous and cheap: notifications and requests that need no handler
/// (`ping`, `initialize`, the static lists) are answered on the caller's thread; everything
/// else runs in its own task, so a slow tool never delays `ping`.
public final class ServerConnection: Sendable {
    enum Phase: Sendable {
        /// No era-deciding message yet.
        case undecided
        /// `initialize` answered; `initialized` is whether `notifications/initialized` came.
        case legacy(version: String, clientInfo: Implementation?, capabilities: JSONValue, initialized: Bool)
        /// A valid 2026-07-28 request came first.
        case modern
    }

    /// What a `subscriptions/listen` stream opted in to.
    struct ListenFilter: Sendable {
        var toolsListChanged = false
        var promptsListChanged = false
        var resourcesListChanged = false
        var resourceSubscriptions: Set<String> = []
    }

    enum ListKind { case tools, prompts, resources }

    struct State: Sendable {
        var phase: Phase = .undecided
        var legacyLogLevel: LogLevel
        var legacySubscriptions: Set<String> = []
        var listens: [RequestID: ListenFilter] = [:]
        var inFlight: [RequestID: Task<Void, Never>?] = [:]
        var closed = false
    }

    // Strong: a host may drop its own reference while clients are connected. The cycle through
    // the server's connection table is broken by `close()`.
    let server: MCPServer
    let sink: any MessageSink
    let state: Mutex<State>

    init(server: MCPServer, sink: any MessageSink) {
        self.server = server
        self.sink = sink
        self.state = Mutex(State(legacyLogLevel: server.options.defaultLegacyLogLevel))
    }

    /// The era this connection was opened in, once its first message decided it.
    public var era: ProtocolEra? {
        state.withLock { state in
            switch state.phase {
            case .undecided: return nil
            case .legacy(let version, _, _, _): return .legacy(version: version)
            case .modern: return .modern(version: ProtocolVersion.latestModern)
            }
        }
    }

    // MARK: Output

    func send(_ message: JSONRPCMessage) {
        if state.withLock({ $0.closed }) { return }
        sink.send(message.encodedLine())
    }

    func isInFlight(_ id: RequestID) -> Bool {
        state.withLock { $0.inFlight[id] != nil }
    }

    // MARK: Input

    /// Handles one incoming line (without its newline). Never throws: every problem is
    /// answered on the wire as the protocol prescribes.
    public func receive(_ line: some Collection<UInt8>) {
        switch JSONRPCMessage.decode(line) {
        case .failure(let failure):
            send(.error(id: failure.id, error: failure.error))
        case .success(.request(let id, let method, let params)):
            handleRequest(id: id, method: method, params: params ?? [:])
        case .success(.notification(let method, let params)):
            handleNotification(method: method, params: params ?? [:])
        case .success(.result), .success(.error):
            // This server sends no requests, so a response answers nothing; MCP forbids
            // answering a response, so it is dropped.
            break
        }
    }

    /// Reports a line that exceeded the transport's length limit.
    public func receiveOversizedLine(limit: Int) {
        send(.error(id: nil, error: .invalidRequest("message longer than the \(limit)-byte line limit was discarded")))
    }

    /// Ends the connection: cancels every running request (their responses are suppressed)
    /// and drops every subscription. Call it when the peer's input ends.
    public func close() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.closed = true
            state.listens.removeAll()
            state.legacySubscriptions.removeAll()
            let tasks = state.inFlight.values.compactMap { $0 }
            state.inFlight.removeAll()
            return tasks
        }
        for task in tasks { task.cancel() }
        server.disconnect(self)
    }

    private func handleNotification(method: String, params: JSONValue) {
        switch method {
        case "notifications/initialized":
            state.withLock { state in
                if case .legacy(let version, let info, let capabilities, _) = state.phase {
                    state.phase = .legacy(version: version, clientInfo: info, capabilities: capabilities, initialized: true)
                }
            }
        case "notifications/cancelled":
            guard let id = params["requestId"].flatMap(RequestID.init) else { return }
            cancel(id)
        default:
            // Unknown notifications are ignored, as JSON-RPC requires.
            break
        }
    }

    private func cancel(_ id: RequestID) {
        let task = state.withLock { state -> Task<Void, Never>?? in
            state.listens.removeValue(forKey: id)
            return state.inFlight.removeValue(forKey: id)
        }
        if case .some(.some(let task)) = task { task.cancel() }
    }

    // MARK: Era

    private static let removedInModern: [String: String] = [
        "ping": "ping was removed in 2026-07-28",
        "logging/setLevel": "2026-07-28 sets the log level per request with io.modelcontextprotocol/logLevel in _meta",
        "resources/subscribe": "2026-07-28 replaced it with subscriptions/listen",
        "resources/unsubscribe": "2026-07-28 replaced it with subscriptions/listen",
        "notifications/initialized": "2026-07-28 has no handshake",
    ]

    private static let modernOnly: Set<String> = ["server/discover", "subscriptions/listen"]

    /// Decides how a request is served, or the error that refuses it.
    private func admit(id: RequestID, method: String, params: JSONValue) -> Result<RequestContext, JSONRPCError> {
        let meta = params["_meta"]
        let progressToken = meta?[MetaKey.progressToken].flatMap { token -> JSONValue? in
            switch token { case .string, .integer: return token; default: return nil }
        }
        let requestedModern = meta?[MetaKey.protocolVersion]

        let phase = state.withLock { $0.phase }
        switch phase {
        case .legacy(let version, let clientInfo, let capabilities, _):
            if method == "initialize" {
                return .failure(.invalidRequest("initialize was already answered on this connection (protocol \(version))"))
            }
            if Self.modernOnly.contains(method) {
                return .failure(.methodNotFound(method, detail: "this connection speaks \(version), opened with initialize; \(method) belongs to 2026-07-28"))
            }
            let level = state.withLock { $0.legacyLogLevel }
            return .success(makeContext(id: id, method: method, era: .legacy(version: version), clientInfo: clientInfo,
                                        capabilities: capabilities, meta: meta, progressToken: progressToken, logLevel: level))
        case .modern:
            if method == "initialize" {
                return .failure(.unsupportedProtocolVersion(
                    requested: params["protocolVersion"]?.stringValue ?? "unknown", supported: ProtocolVersion.modern.reversed(),
                    detail: "this connection speaks 2026-07-28 (decided by its first message), which has no initialize handshake"))
            }
            return admitModern(id: id, method: method, meta: meta, progressToken: progressToken, locking: false)
        case .undecided:
            if method == "initialize" {
                return .success(makeContext(id: id, method: method, era: .legacy(version: ProtocolVersion.latestLegacy),
                                            clientInfo: nil, capabilities: [:], meta: meta, progressToken: progressToken, logLevel: nil))
            }
            if requestedModern != nil {
                return admitModern(id: id, method: method, meta: meta, progressToken: progressToken, locking: true)
            }
            if method == "ping" {
                // The legacy lifecycle allows ping before initialize.
                return .success(makeContext(id: id, method: method, era: .legacy(version: ProtocolVersion.latestLegacy),
                                            clientInfo: nil, capabilities: [:], meta: meta, progressToken: progressToken, logLevel: nil))
            }
            return .failure(JSONRPCError(
                code: JSONRPCError.invalidRequestCode,
                message: "Server not initialized: send initialize first (protocol 2025-11-25 and earlier), or put "
                    + "\(MetaKey.protocolVersion) and \(MetaKey.clientCapabilities) in _meta (protocol 2026-07-28)",
                data: ["supported": .array(ProtocolVersion.all.map(JSONValue.string))]
            ))
        }
    }

    private func admitModern(id: RequestID, method: String, meta: JSONValue?, progressToken: JSONValue?, locking: Bool)
        -> Result<RequestContext, JSONRPCError>
    {
        guard let versionValue = meta?[MetaKey.protocolVersion] else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.protocolVersion)\" is required on every 2026-07-28 request"))
        }
        guard let version = versionValue.stringValue else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.protocolVersion)\" must be a string"))
        }
        guard ProtocolVersion.modern.contains(version) else {
            // On a connection not yet decided, legacy revisions remain open through initialize.
            let supported = locking ? ProtocolVersion.all : ProtocolVersion.modern.reversed()
            return .failure(.unsupportedProtocolVersion(requested: version, supported: supported))
        }
        guard let capabilities = meta?[MetaKey.clientCapabilities] else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.clientCapabilities)\" is required on every 2026-07-28 request"))
        }
        guard capabilities.objectValue != nil else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.clientCapabilities)\" must be an object"))
        }
        var logLevel: LogLevel?
        if let levelValue = meta?[MetaKey.logLevel] {
            guard let name = levelValue.stringValue, let level = LogLevel(rawValue: name) else {
                return .failure(.invalidParams("_meta.\"\(MetaKey.logLevel)\" must be one of \(LogLevel.spelledOut)"))
            }
            logLevel = level
        }
        if let reason = Self.removedInModern[method] {
            return .failure(.methodNotFound(method, detail: reason))
        }
        if locking {
            state.withLock { state in
                if case .undecided = state.phase { state.phase = .modern }
            }
        }
        return .success(makeContext(id: id, method: method, era: .modern(version: version),
                                    clientInfo: Implementation(json: meta?[MetaKey.clientInfo]), capabilities: capabilities,
                                    meta: meta, progressToken: progressToken, logLevel: logLevel))
    }

    private func makeContext(id: RequestID, method: String, era: ProtocolEra, clientInfo: Implementation?, capabilities: JSONValue,
                             meta: JSONValue?, progressToken: JSONValue?, logLevel: LogLevel?) -> RequestContext {
        RequestContext(requestID: id, method: method, era: era, clientInfo: clientInfo, clientCapabilities: capabilities,
                       meta: meta, progressToken: progressToken, logLevel: logLevel,
                       progress: progressToken == nil ? nil : ProgressTracker(), connection: self)
    }

    // MARK: Requests

    private func handleRequest(id: RequestID, method: String, params: JSONValue) {
        let context: RequestContext
        switch admit(id: id, method: method, params: params) {
        case .failure(let error):
            send(.error(id: id, error: error))
            return
        case .success(let admitted):
            context = admitted
        }

        // Claim the id before any work so that a duplicate is refused and a cancellation can
        // find the request.
        let claimed = state.withLock { state -> Bool in
            guard !state.closed, state.inFlight[id] == nil else { return false }
            state.inFlight[id] = .some(nil)
            return true
        }
        guard claimed else {
            send(.error(id: id, error: .invalidRequest("request id \(id) is already in use by a request in progress")))
            return
        }

        if let immediate = handleImmediately(method: method, params: params, context: context) {
            finish(context, with: immediate)
            return
        }
        if method == "subscriptions/listen" {
            openListen(params: params, context: context)
            return
        }
        let task = Task { [self] in
            let outcome: Result<JSONValue, JSONRPCError>
            do {
                outcome = .success(try await RequestContext.$current.withValue(context) {
                    try await handleAsync(method: method, params: params, context: context)
                })
            } catch let error as JSONRPCError {
                outcome = .failure(error)
            } catch is CancellationError {
                cancel(id)
                return
            } catch {
                outcome = .failure(.internalError(String(describing: error)))
            }
            finish(context, with: outcome)
        }
        state.withLock { state in
            // The task may already have finished and released its id.
            if case .some(.none) = state.inFlight[id] { state.inFlight[id] = .some(task) }
        }
    }

    /// Sends the response unless the request was cancelled meanwhile.
    private func finish(_ context: RequestContext, with outcome: Result<JSONValue, JSONRPCError>) {
        let stillWanted = state.withLock { $0.inFlight.removeValue(forKey: context.requestID) != nil }
        guard stillWanted else { return }
        switch outcome {
        case .success(let result):
            send(.result(id: context.requestID, result: decorate(result, method: context.method, era: context.era)))
        case .failure(let error):
            send(.error(id: context.requestID, error: adapt(error, era: context.era)))
        }
    }

    /// Adds the fields the 2026-07-28 schema requires on every result.
    private func decorate(_ result: JSONValue, method: String, era: ProtocolEra) -> JSONValue {
        guard era.isModern, case .object(var members) = result else { return result }
        members["resultType"] = members["resultType"] ?? "complete"
        var meta = members["_meta"]?.objectValue ?? [:]
        meta[MetaKey.serverInfo] = server.info.json
        members["_meta"] = .object(meta)
        switch method {
        case "server/discover", "tools/list", "prompts/list", "resources/templates/list":
            members["ttlMs"] = .integer(Int64(server.options.listTTLMilliseconds))
            members["cacheScope"] = "public"
        case "resources/list", "resources/read":
            members["ttlMs"] = .integer(Int64(server.options.resourceTTLMilliseconds))
            members["cacheScope"] = "private"
        default:
            break
        }
        return .object(members)
    }

    /// Legacy revisions report a missing resource as -32002; 2026-07-28 as -32602.
    private func adapt(_ error: JSONRPCError, era: ProtocolEra) -> JSONRPCError {
        guard error.code == ResourceNotFound.marker else { return error }
        var adapted = error
        adapted.code = era.isModern ? JSONRPCError.invalidParamsCode : JSONRPCError.legacyResourceNotFoundCode
        return adapted
    }

    // MARK: Subscriptions

    private func openListen(params: JSONValue, context: RequestContext) {
        guard let filterValue = params["notifications"], filterValue.objectValue != nil else {
            finish(context, with: .failure(.invalidParams("\"notifications\" (a subscription filter object) is required")))
            return
        }
        let capabilities = server.capabilities()
        var filter = ListenFilter()
        filter.toolsListChanged = filterValue["toolsListChanged"]?.boolValue == true && capabilities["tools"] != nil
        filter.promptsListChanged = filterValue["promptsListChanged"]?.boolValue == true && capabilities["prompts"] != nil
        filter.resourcesListChanged = filterValue["resourcesListChanged"]?.boolValue == true && capabilities["resources"] != nil
        if capabilities["resources"] != nil {
            filter.resourceSubscriptions = Set(filterValue["resourceSubscriptions"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        let registered = state.withLock { state -> Bool in
            guard state.inFlight[context.requestID] != nil else { return false }
            state.listens[context.requestID] = filter
            return true
        }
        guard registered else { return }
        // The acknowledgment is the first message of the stream; it is sent before any
        // change can be delivered on it because delivery happens on this same ordered sink.
        var honored: [String: JSONValue] = [:]
        if filter.toolsListChanged { honored["toolsListChanged"] = true }
        if filter.promptsListChanged { honored["promptsListChanged"] = true }
        if filter.resourcesListChanged { honored["resourcesListChanged"] = true }
        if !filter.resourceSubscriptions.isEmpty {
            honored["resourceSubscriptions"] = .array(filter.resourceSubscriptions.sorted().map(JSONValue.string))
        }
        send(.notification(method: "notifications/subscriptions/acknowledged", params: [
            "_meta": [MetaKey.subscriptionID: context.requestID.json], "notifications": .object(honored),
        ]))
    }

    func endSubscriptions() {
        let ids = state.withLock { state -> [RequestID] in
            let ids = Array(state.listens.keys)
            state.listens.removeAll()
            for id in ids { state.inFlight.removeValue(forKey: id) }
            return ids
        }
        for id in ids {
            send(.result(id: id, result: [
                "resultType": "complete", "_meta": [MetaKey.subscriptionID: id.json, MetaKey.serverInfo: server.info.json],
            ]))
            send(.notification(method: "notifications/cancelled", params: [
                "requestId": id.json, "reason": "the server is shutting down",
            ]))
        }
    }

    func resourceUpdated(uri: String) {
        let (legacy, streams) = state.withLock { state -> (Bool, [RequestID]) in
            let legacy: Bool
            if case .legacy = state.phase { legacy = state.legacySubscriptions.contains(uri) } else { legacy = false }
            let streams = state.listens.filter { $0.value.resourceSubscriptions.contains(uri) }.map(\.key)
            return (legacy, streams)
        }
        if legacy {
            send(.notification(method: "notifications/resources/updated", params: ["uri": .string(uri)]))
        }
        for id in streams.sorted(by: { $0.description < $1.description }) {
            send(.notification(method: "notifications/resources/updated", params: [
                "_meta": [MetaKey.subscriptionID: id.json], "uri": .string(uri),
            ]))
        }
    }

    func listChanged(_ kind: ListKind) {
        let method: String
        switch kind {
        case .tools: method = "notifications/tools/list_changed"
        case .prompts: method = "notifications/prompts/list_changed"
        case .resources: method = "notifications/resources/list_changed"
        }
        let (legacy, streams) = state.withLock { state -> (Bool, [RequestID]) in
            var legacy = false
            if case .legacy(_, _, _, let initialized) = state.phase { legacy = initialized }
            let streams = state.listens.filter { _, filter in
                switch kind {
                case .tools: return filter.toolsListChanged
                case .prompts: return filter.promptsListChanged
                case .resources: return filter.resourcesListChanged
                }
            }.map(\.key)
            return (legacy, streams)
        }
        if legacy { send(.notification(method: method, params: nil)) }
        for id in streams {
            send(.notification(method: method, params: ["_meta": [MetaKey.subscriptionID: id.json]]))
        }
    }

    func broadcastLog(_ level: LogLevel, _ data: JSONValue, logger: String?) {
        let admitted = state.withLock { state -> Bool in
            guard case .legacy = state.phase else { return false }
            return level >= state.legacyLogLevel
        }
        guard admitted else { return }
        send(.notification(method: "notifications/message", params: .object(dropping: [
            "level": .string(level.rawValue), "logger": logger.map(JSONValue.string), "data": data,
        ])))
    }

    // MARK: Method table

    /// Methods answered synchronously on the receiving thread; `nil` for those that need a
    /// task.
    private func handleImmediately(method: String, params: JSONValue, context: RequestContext) -> Result<JSONValue, JSONRPCError>? {
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

    private func handleAsync(method: String, params: JSONValue, context: RequestContext) async throws -> JSONValue {
        switch method {
        case "tools/call": return try await callTool(params: params, context: context)
        case "resources/list": return try await listResources(params: params)
        case "resources/read": return try await readResource(params: params, context: context)
        case "prompts/get": return try await getPrompt(params: params, context: context)
        case "completion/complete": return try await complete(params: params, context: context)
        default: throw JSONRPCError.methodNotFound(method)
        }
    }

    private func initialize(params: JSONValue) -> Result<JSONValue, JSONRPCError> {
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

    // MARK: Pagination

    private static let cursorPrefix = "mcpcore:"

    private func paginate(_ items: [JSONValue], key: String, params: JSONValue) -> Result<JSONValue, JSONRPCError> {
        var offset = 0
        if let cursorValue = params["cursor"] {
            guard let cursor = cursorValue.stringValue, cursor.hasPrefix(Self.cursorPrefix),
                  let decoded = Int(cursor.dropFirst(Self.cursorPrefix.count), radix: 16), decoded >= 0, decoded <= items.count
            else {
                return .failure(.invalidParams("\"cursor\" is not a cursor this server issued; list again from the start"))
            }
            offset = decoded
        }
        let end = min(items.count, offset + server.options.pageSize)
        let next = end < items.count ? JSONValue.string(Self.cursorPrefix + String(end, radix: 16)) : nil
        return .success(.object(dropping: [key: .array(Array(items[offset..<end])), "nextCursor": next]))
    }

    // MARK: Tools

    private func callTool(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        guard let name = params["name"]?.stringValue else { throw JSONRPCError.invalidParams("\"name\" (a string) is required") }
        let tool = server.registry.withLock { $0.tools.first { $0.name == name } }
        guard let tool else {
            let known = server.registry.withLock { $0.tools.map(\.name) }.joined(separator: ", ")
            throw JSONRPCError.invalidParams("Unknown tool: \(name) (available: \(known.isEmpty ? "none" : known))")
        }
        let argumentsValue = params["arguments"] ?? [:]
        guard case .object(let arguments) = argumentsValue else {
            throw JSONRPCError.invalidParams("\"arguments\" must be an object, got \(argumentsValue.typeName)")
        }
        let violations = JSONSchemaValidator(schema: tool.inputSchema).validate(argumentsValue, rootName: "arguments")
        if !violations.isEmpty {
            let text = "Invalid arguments for tool \(name): " + violations.map(\.description).joined(separator: "; ")
            return ToolResult(text: text, isError: true).json
        }
        let result: ToolResult
        do {
            result = try await tool.handler(ToolCall(arguments: arguments, context: context))
        } catch let error as ToolError {
            return ToolResult(text: error.message, structuredContent: error.structuredContent, isError: true).json
        } catch let error as JSONRPCError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return ToolResult(text: "Tool \(name) failed: \(error)", isError: true).json
        }
        if let outputSchema = tool.outputSchema, !result.isError {
            guard let structured = result.structuredContent else {
                throw JSONRPCError.internalError("tool \(name) declares an outputSchema but returned no structuredContent")
            }
            let problems = JSONSchemaValidator(schema: outputSchema).validate(structured, rootName: "structuredContent")
            if !problems.isEmpty {
                throw JSONRPCError.internalError("tool \(name) returned output that does not match its outputSchema: "
                    + problems.map(\.description).joined(separator: "; "))
            }
        }
        return result.json
    }

    // MARK: Resources

    private func resourceExists(uri: String) -> Bool {
        server.registry.withLock { registry in
            registry.resources.contains { $0.descriptor.uri == uri } || registry.templates.contains { $0.template.match(uri) != nil }
        }
    }

    private func listResources(params: JSONValue) async throws -> JSONValue {
        let (resources, listers) = server.registry.withLock { registry in
            (registry.resources.map(\.descriptor), registry.templates.compactMap(\.list))
        }
        var descriptors = resources
        for list in listers { descriptors += await list() }
        return try paginate(descriptors.map(\.json), key: "resources", params: params).get()
    }

    private func readResource(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        guard let uri = params["uri"]?.stringValue else { throw JSONRPCError.invalidParams("\"uri\" (a string) is required") }
        let (resource, templates) = server.registry.withLock { registry in
            (registry.resources.first { $0.descriptor.uri == uri }, registry.templates)
        }
        if let resource {
            return ["contents": .array(try await resource.read(context).map(\.json))]
        }
        for template in templates {
            guard let variables = template.template.match(uri) else { continue }
            if let contents = try await template.read(variables, uri, context) {
                return ["contents": .array(contents.map(\.json))]
            }
        }
        throw ResourceNotFound.error(uri: uri)
    }

    // MARK: Prompts

    private func getPrompt(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        guard let name = params["name"]?.stringValue else { throw JSONRPCError.invalidParams("\"name\" (a string) is required") }
        let prompt = server.registry.withLock { $0.prompts.first { $0.name == name } }
        guard let prompt else {
            let known = server.registry.withLock { $0.prompts.map(\.name) }.joined(separator: ", ")
            throw JSONRPCError.invalidParams("Unknown prompt: \(name) (available: \(known.isEmpty ? "none" : known))")
        }
        let arguments = try Self.stringArguments(params["arguments"], what: "prompt \(name)")
        let missing = prompt.arguments.filter { $0.required && (arguments[$0.name] ?? "").isEmpty }.map(\.name)
        if !missing.isEmpty {
            throw JSONRPCError.invalidParams("Missing required argument\(missing.count > 1 ? "s" : "") for prompt \(name): "
                + missing.joined(separator: ", "))
        }
        return try await prompt.render(arguments, context).json
    }

    private static func stringArguments(_ value: JSONValue?, what: String) throws -> [String: String] {
        guard let value, !value.isNull else { return [:] }
        guard case .object(let members) = value else {
            throw JSONRPCError.invalidParams("\"arguments\" for \(what) must be an object of strings")
        }
        var arguments: [String: String] = [:]
        for (key, member) in members {
            guard let string = member.stringValue else {
                throw JSONRPCError.invalidParams("argument \(key) for \(what) must be a string, got \(member.typeName)")
            }
            arguments[key] = string
        }
        return arguments
    }

    // MARK: Completion

    private func complete(params: JSONValue, context: RequestContext) async throws -> JSONValue {
        let provider = server.registry.withLock { $0.completionProvider }
        guard let provider else { throw JSONRPCError.methodNotFound("completion/complete", detail: "this server offers no completions") }
        guard let reference = params["ref"], let type = reference["type"]?.stringValue else {
            throw JSONRPCError.invalidParams("\"ref\" with a \"type\" is required")
        }
        let parsedReference: CompletionRequest.Reference
        switch type {
        case "ref/prompt":
            guard let name = reference["name"]?.stringValue else { throw JSONRPCError.invalidParams("ref/prompt needs a \"name\"") }
            guard server.registry.withLock({ $0.prompts.contains { $0.name == name } }) else {
                throw JSONRPCError.invalidParams("Unknown prompt: \(name)")
            }
            parsedReference = .prompt(name: name)
        case "ref/resource":
            guard let uri = reference["uri"]?.stringValue else { throw JSONRPCError.invalidParams("ref/resource needs a \"uri\"") }
            guard server.registry.withLock({ $0.templates.contains { $0.template.text == uri } || $0.resources.contains { $0.descriptor.uri == uri } }) else {
                throw JSONRPCError.invalidParams("Unknown resource template: \(uri)")
            }
            parsedReference = .resourceTemplate(uri: uri)
        default:
            throw JSONRPCError.invalidParams("\"ref.type\" must be ref/prompt or ref/resource, got \(type)")
        }
        guard let argumentName = params["argument"]?["name"]?.stringValue, let value = params["argument"]?["value"]?.stringValue else {
            throw JSONRPCError.invalidParams("\"argument\" needs a string \"name\" and \"value\"")
        }
        let contextArguments = try Self.stringArguments(params["context"]?["arguments"], what: "completion context")
        let request = CompletionRequest(reference: parsedReference, argumentName: argumentName, value: value,
                                        contextArguments: contextArguments)
        return try await provider(request, context).json
    }
}

/// A resource-not-found error whose code is chosen per era when the response is sent.
enum ResourceNotFound {
    /// A private code outside the JSON-RPC range, replaced before it reaches the wire.
    static let marker = -1_000_002

    static func error(uri: String) -> JSONRPCError {
        JSONRPCError(code: marker, message: "Resource not found: \(uri)", data: ["uri": .string(uri)])
    }
}
