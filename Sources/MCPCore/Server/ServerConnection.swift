import CoreMetrics
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
        var legacyLogLevel: LogLevel?
        var legacySubscriptions: Set<String> = []
        var listens: [RequestID: ListenFilter] = [:]
        var inFlight: [RequestID: Task<Void, Never>?] = [:]
        var closed = false
        /// The lists a legacy client has asked for: resources `list_changed` goes only to a
        /// client that listed them (one that never did has nothing to refresh, and a short-lived
        /// one may be gone when the notice arrives).
        var listed: Set<ListKind> = []
    }

    // Strong: a host may drop its own reference while clients are connected. The cycle through
    // the server's connection table is broken by `close()`.
    let server: MCPServer
    let sink: any MessageSink
    let state: Mutex<State>
    /// Who is on the other end, as the transport established it.
    public let principal: Principal

    init(server: MCPServer, sink: any MessageSink, principal: Principal = .local) {
        self.server = server
        self.sink = sink
        self.principal = principal
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

    func send(_ message: JSONRPCMessage, route: MessageRoute) {
        if state.withLock({ $0.closed }) { return }
        sink.send(message.encodedLine(), route: route)
    }

    /// Sends a response, routed to the request it answers.
    func respond(_ message: JSONRPCMessage) {
        switch message {
        case .result(let id, _): send(message, route: .response(id))
        case .error(let id, _): send(message, route: .response(id))
        case .request, .notification: send(message, route: .unsolicited)
        }
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
            respond(.error(id: failure.id, error: failure.error))
        case .success(let message):
            receive(message: message)
        }
    }

    /// Handles one message a transport has already decoded (Streamable HTTP decodes each body
    /// to check its headers against it). `transportHeaders` are what the transport chose to
    /// pass on from the message's envelope (HTTP headers, names lowercased); a request's handler
    /// finds them in ``RequestContext/transportHeaders``, and the client's network address, when
    /// the transport has one, in ``RequestContext/clientAddress``.
    public func receive(
        message: JSONRPCMessage, transportHeaders: [String: String] = [:], clientAddress: String? = nil
    ) {
        switch message {
        case .request(let id, let method, let params):
            handleRequest(
                id: id, method: method, params: params ?? [:], transportHeaders: transportHeaders,
                clientAddress: clientAddress)
        case .notification(let method, let params):
            handleNotification(method: method, params: params ?? [:])
        case .result, .error:
            // This server sends no requests, so a response answers nothing; MCP forbids
            // answering a response, so it is dropped.
            break
        }
    }

    /// Reports a line that exceeded the transport's length limit.
    public func receiveOversizedLine(limit: Int) {
        respond(
            .error(id: nil, error: .invalidRequest("message longer than the \(limit)-byte line limit was discarded")))
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

    func handleNotification(method: String, params: JSONValue) {
        switch method {
        case "notifications/initialized":
            state.withLock { state in
                if case .legacy(let version, let info, let capabilities, _) = state.phase {
                    state.phase = .legacy(
                        version: version, clientInfo: info, capabilities: capabilities, initialized: true)
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

    func cancel(_ id: RequestID) {
        let task = state.withLock { state -> Task<Void, Never>?? in
            state.listens.removeValue(forKey: id)
            return state.inFlight.removeValue(forKey: id)
        }
        if case .some(.some(let task)) = task { task.cancel() }
    }

    // MARK: Requests

    func handleRequest(
        id: RequestID, method: String, params: JSONValue, transportHeaders: [String: String] = [:],
        clientAddress: String? = nil
    ) {
        var context: RequestContext
        switch admit(id: id, method: method, params: params) {
        case .failure(let error):
            respond(.error(id: id, error: error))
            return
        case .success(let admitted):
            context = admitted
        }
        context.transportHeaders = transportHeaders
        context.clientAddress = clientAddress
        context.principal = principal
        if let kind = Self.listKind(of: method) { state.withLock { _ = $0.listed.insert(kind) } }

        // Claim the id before any work so that a duplicate is refused and a cancellation can
        // find the request.
        let claimed = state.withLock { state -> Bool in
            guard !state.closed, state.inFlight[id] == nil else { return false }
            state.inFlight[id] = .some(nil)
            return true
        }
        guard claimed else {
            respond(
                .error(id: id, error: .invalidRequest("request id \(id) is already in use by a request in progress")))
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
        let span = RequestTracing.start(method: method, params: params, context: context)
        if method == "tools/call",
            let answer = RequestTracing.now(
                in: span,
                {
                    RequestContext.$current.withValue(context) { callToolImmediately(params: params, context: context) }
                })
        {
            // Answered on this thread: no task, no hop to the cooperative pool and back.
            RequestTracing.mark(answer, on: span)
            span.end()
            finish(context, with: answer)
            return
        }
        let task = Task { [self] in
            let outcome: Result<JSONValue, JSONRPCError>
            do {
                outcome = .success(
                    try await RequestTracing.run(in: span) {
                        try await RequestContext.$current.withValue(context) {
                            try await handleAsync(method: method, params: params, context: context)
                        }
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

    /// Sends the response unless the request was cancelled meanwhile; counts it by method, era
    /// and result (`agent_payments_mcp_requests_total`: `ok`, `tool_error` for a tool result
    /// with `isError`, `error`, or `cancelled`; swift-metrics, no backend chosen here).
    ///
    /// The answer goes out before it is counted: the first count of a process makes the metrics
    /// backend's first counter, which was half of a cold start's handshake.
    func finish(_ context: RequestContext, with outcome: Result<JSONValue, JSONRPCError>) {
        let stillWanted = state.withLock { $0.inFlight.removeValue(forKey: context.requestID) != nil }
        let result: String
        switch outcome {
        case _ where !stillWanted:
            result = "cancelled"
        case .success(let value):
            result = value["isError"] == .bool(true) ? "tool_error" : "ok"
            respond(.result(id: context.requestID, result: decorate(value, method: context.method, era: context.era)))
        case .failure(let error):
            result = "error"
            respond(.error(id: context.requestID, error: adapt(error, era: context.era)))
        }
        Counter(
            label: "agent_payments_mcp_requests_total",
            dimensions: [
                ("method", context.method), ("era", context.era.isModern ? "modern" : "legacy"), ("result", result),
            ]
        ).increment()
    }

    /// Adds the fields the 2026-07-28 schema requires on every result.
    func decorate(_ result: JSONValue, method: String, era: ProtocolEra) -> JSONValue {
        guard era.isModern, case .object(var members) = result else { return result }
        members["resultType"] = members["resultType"] ?? "complete"
        var meta = members["_meta"]?.objectValue ?? [:]
        meta[MetaKey.serverInfo] = server.info.json
        members["_meta"] = .object(meta)
        switch method {
        case "server/discover", "tools/list", "prompts/list", "resources/templates/list":
            members["ttlMs"] = .integer(Int64(server.options.listTTLMilliseconds))
            // A principal with restricted scopes sees its own tools: not a list to share.
            members["cacheScope"] = method == "tools/list" && principal.scopes != nil ? "private" : "public"
        case "resources/list", "resources/read":
            members["ttlMs"] = .integer(Int64(server.options.resourceTTLMilliseconds))
            members["cacheScope"] = "private"
        default:
            break
        }
        return .object(members)
    }

    /// Legacy revisions report a missing resource as -32002; 2026-07-28 as -32602.
    func adapt(_ error: JSONRPCError, era: ProtocolEra) -> JSONRPCError {
        guard error.code == ResourceNotFound.marker else { return error }
        var adapted = error
        adapted.code = era.isModern ? JSONRPCError.invalidParamsCode : JSONRPCError.legacyResourceNotFoundCode
        return adapted
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
