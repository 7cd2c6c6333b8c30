import Synchronization

/// An MCP server: the registries of tools, resources, prompts and completions, and the
/// engine that serves them to any number of connections in both protocol eras.
///
/// Register what the server offers, then serve a transport. Registration is thread-safe and
/// may happen while connections are open; call the `notify…ListChanged` methods afterwards
/// so that subscribed clients learn of it.
///
/// ```swift
/// let server = MCPServer(info: Implementation(name: "demo", version: "1.0.0"),
///                        instructions: "Call echo to hear yourself.")
/// server.register(Tool(name: "echo", inputSchema: [...]) { call in ToolResult(text: "…") })
/// await server.serveStdio()   // returns when stdin reaches end of file
/// ```
public final class MCPServer: Sendable {
    /// Tunables of the engine.
    public struct Options: Sendable {
        /// Items per page of every list (`tools/list`, `resources/list`, ...).
        public var pageSize: Int
        /// The minimum level of log notifications a legacy client receives before it calls
        /// `logging/setLevel`; `nil` (the default) sends none until the client asks, so a client
        /// that never set a level is never sent a `notifications/message` it did not want.
        public var defaultLegacyLogLevel: LogLevel?
        /// `ttlMs` on the 2026-07-28 cacheable results of the static lists (tools, prompts,
        /// templates, discover).
        public var listTTLMilliseconds: Int
        /// `ttlMs` on `resources/list` and `resources/read`, whose contents change often.
        public var resourceTTLMilliseconds: Int
        /// The longest accepted line on a stream transport, in bytes.
        public var maximumLineLength: Int
        /// Whether a tool's argument errors quote the offending values; a server whose arguments
        /// might carry what it must never echo (card data typed into the wrong field) says no.
        public var echoesArgumentValues: Bool
        /// Features declared in the capabilities before anything of theirs is registered. A host
        /// that answers the handshake while it still installs its tools (holding every other
        /// request until they are in, ``InputGate/init(holdingAllBut:atMost:)``) declares what it
        /// is about to register; the default declares only what is registered.
        public var declaredFeatures: Set<Feature>

        public init(
            pageSize: Int = 100,
            defaultLegacyLogLevel: LogLevel? = nil,
            listTTLMilliseconds: Int = 60_000,
            resourceTTLMilliseconds: Int = 0,
            maximumLineLength: Int = 4 * 1024 * 1024,
            echoesArgumentValues: Bool = true,
            declaredFeatures: Set<Feature> = []
        ) {
            self.pageSize = max(1, pageSize)
            self.defaultLegacyLogLevel = defaultLegacyLogLevel
            self.listTTLMilliseconds = listTTLMilliseconds
            self.resourceTTLMilliseconds = resourceTTLMilliseconds
            self.maximumLineLength = maximumLineLength
            self.echoesArgumentValues = echoesArgumentValues
            self.declaredFeatures = declaredFeatures
        }
    }

    /// What a server can offer, each a capability of the handshake.
    public enum Feature: Sendable, Hashable, CaseIterable {
        case tools, prompts, resources, completions
    }

    /// Suggests values for prompt and resource-template arguments.
    public typealias CompletionProvider = @Sendable (CompletionRequest, RequestContext) async throws -> Completion

    struct Registry {
        var tools: [Tool] = []
        var prompts: [Prompt] = []
        var resources: [Resource] = []
        var templates: [ResourceTemplate] = []
        var completionProvider: CompletionProvider?
    }

    /// The server's name, title and version, as sent in `serverInfo`.
    public let info: Implementation
    /// Guidance for the model on how to use this server, sent with `initialize` and
    /// `server/discover`.
    public let instructions: String?
    public let options: Options

    let registry = Mutex(Registry())
    private let connections = Mutex<[ObjectIdentifier: ServerConnection]>([:])
    /// What ``stop()`` runs: each stdio transport's way to end its serving early.
    private let stoppers = Mutex<[@Sendable () -> Void]>([])
    private let stopped = Mutex(false)

    public init(info: Implementation, instructions: String? = nil, options: Options = Options()) {
        self.info = info
        self.instructions = instructions
        self.options = options
    }

    // MARK: Registration

    /// Adds a tool, replacing any tool of the same name in place.
    public func register(_ tool: Tool) {
        registry.withLock { Self.upsert(tool, into: &$0.tools) { $0.name == tool.name } }
    }

    /// Adds a prompt, replacing any prompt of the same name in place.
    public func register(_ prompt: Prompt) {
        registry.withLock { Self.upsert(prompt, into: &$0.prompts) { $0.name == prompt.name } }
    }

    /// Adds a resource with a fixed URI, replacing any resource of the same URI in place.
    public func register(_ resource: Resource) {
        registry.withLock {
            Self.upsert(resource, into: &$0.resources) { $0.descriptor.uri == resource.descriptor.uri }
        }
    }

    /// Adds a resource template, replacing any template with the same URI template in place.
    public func register(_ template: ResourceTemplate) {
        registry.withLock { Self.upsert(template, into: &$0.templates) { $0.template == template.template } }
    }

    /// Replaces the first element matching `isSame` in place (keeping list order stable), or
    /// appends.
    private static func upsert<Element>(_ element: Element, into list: inout [Element], where isSame: (Element) -> Bool)
    {
        if let index = list.firstIndex(where: isSame) {
            list[index] = element
        } else {
            list.append(element)
        }
    }

    /// Removes the tool named `name`; returns whether there was one.
    @discardableResult
    public func removeTool(named name: String) -> Bool {
        registry.withLock { registry in
            guard let index = registry.tools.firstIndex(where: { $0.name == name }) else { return false }
            registry.tools.remove(at: index)
            return true
        }
    }

    /// The scopes a principal needs to call the tool `name` (empty when it needs none); `nil`
    /// when no such tool is registered. A transport that can answer `403 insufficient_scope`
    /// (Streamable HTTP) asks before it dispatches a `tools/call`.
    public func requiredScopes(forTool name: String) -> [String]? {
        registry.withLock { $0.tools.first { $0.name == name }?.requiredScopes }
    }

    /// Sets the handler of `completion/complete` and declares the `completions` capability.
    public func setCompletionProvider(_ provider: @escaping CompletionProvider) {
        registry.withLock { $0.completionProvider = provider }
    }

    // MARK: Serving

    /// Opens a connection whose outgoing lines go to `sink`, on behalf of `principal`. Feed it
    /// incoming lines with ``ServerConnection/receive(_:)`` and close it when the peer goes away.
    public func connect(sink: any MessageSink, principal: Principal = .local) -> ServerConnection {
        let connection = ServerConnection(server: self, sink: sink, principal: principal)
        connections.withLock { $0[ObjectIdentifier(connection)] = connection }
        return connection
    }

    func disconnect(_ connection: ServerConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    /// Serves one client over this process's standard input and output until standard
    /// input reaches end of file, then cancels whatever is still running and returns once
    /// every queued message has been written.
    public func serveStdio(gate: InputGate? = nil) async {
        let transport = StdioTransport(maximumLineLength: options.maximumLineLength, gate: gate)
        await transport.run(server: self)
    }

    /// Starts serving one client over standard input and output and returns at once; await
    /// the result's ``StdioTransport/Serving/finished()`` for what ``serveStdio(gate:)`` does.
    public func startStdio(gate: InputGate? = nil) -> StdioTransport.Serving {
        StdioTransport(maximumLineLength: options.maximumLineLength, gate: gate).start(server: self)
    }

    /// Shuts down gracefully (SIGTERM, SIGINT): every open `subscriptions/listen` stream ends
    /// with its result, then ``serveStdio()`` cancels what still runs, writes out every queued
    /// message and returns, without waiting for standard input to end.
    public func stop() {
        let run = stopped.withLock { stopped -> [@Sendable () -> Void]? in
            if stopped { return nil }
            stopped = true
            return stoppers.withLock { $0 }
        }
        guard let run else { return }
        endSubscriptions()
        for stopper in run { stopper() }
    }

    /// Whether ``stop()`` was called.
    public var isStopped: Bool { stopped.withLock { $0 } }

    /// Registers how a transport ends its serving early; runs at once if already stopped.
    func onStop(_ stopper: @escaping @Sendable () -> Void) {
        let already = stopped.withLock { stopped -> Bool in
            if !stopped { stoppers.withLock { $0.append(stopper) } }
            return stopped
        }
        if already { stopper() }
    }

    /// Ends every open `subscriptions/listen` stream gracefully, as a server should before it
    /// shuts down.
    public func endSubscriptions() {
        for connection in openConnections() { connection.endSubscriptions() }
    }

    // MARK: Notifications

    private func openConnections() -> [ServerConnection] {
        connections.withLock { Array($0.values) }
    }

    /// Tells subscribed clients that the resource at `uri` changed and may be read again.
    ///
    /// Legacy clients receive it if they called `resources/subscribe` for `uri`; modern
    /// clients on every `subscriptions/listen` stream that named `uri`. With `visibleTo`, only
    /// connections whose principal it admits hear of it: a subscription to another principal's
    /// resource is accepted like any (so that it reveals nothing) but never carries news of it.
    /// Returns how many notifications were sent (none when no one is subscribed).
    @discardableResult
    public func notifyResourceUpdated(uri: String, visibleTo isVisible: (@Sendable (Principal) -> Bool)? = nil) -> Int {
        var sent = 0
        for connection in openConnections() where isVisible?(connection.principal) ?? true {
            sent += connection.resourceUpdated(uri: uri)
        }
        return sent
    }

    /// Tells clients that the list of tools changed.
    public func notifyToolsListChanged() {
        for connection in openConnections() { connection.listChanged(.tools) }
    }

    /// Tells clients that the list of prompts changed.
    public func notifyPromptsListChanged() {
        for connection in openConnections() { connection.listChanged(.prompts) }
    }

    /// Tells clients that the list of resources changed; with `visibleTo`, only the connections
    /// whose principal it admits (a change another principal cannot see tells it nothing).
    /// Returns how many notifications were sent.
    @discardableResult
    public func notifyResourcesListChanged(visibleTo isVisible: (@Sendable (Principal) -> Bool)? = nil) -> Int {
        var sent = 0
        for connection in openConnections() where isVisible?(connection.principal) ?? true {
            sent += connection.listChanged(.resources)
        }
        return sent
    }

    /// Sends a log message that belongs to no request to every legacy client whose level
    /// admits it. (2026-07-28 allows log messages only within a request; see
    /// ``RequestContext/log(_:_:logger:)``.)
    public func log(_ level: LogLevel, _ data: JSONValue, logger: String? = nil) {
        for connection in openConnections() { connection.broadcastLog(level, data, logger: logger) }
    }

    // MARK: Capabilities

    /// The capabilities this server declares: what is registered and implemented, and what its
    /// options declare it is about to register (``Options/declaredFeatures``).
    func capabilities() -> JSONValue {
        let declared = options.declaredFeatures
        let (hasTools, hasPrompts, hasResources, hasCompletions) = registry.withLock { registry in
            (
                !registry.tools.isEmpty || declared.contains(.tools),
                !registry.prompts.isEmpty || declared.contains(.prompts),
                !registry.resources.isEmpty || !registry.templates.isEmpty || declared.contains(.resources),
                registry.completionProvider != nil || declared.contains(.completions)
            )
        }
        return .object(dropping: [
            "tools": hasTools ? ["listChanged": true] : nil,
            "prompts": hasPrompts ? ["listChanged": true] : nil,
            "resources": hasResources ? ["listChanged": true, "subscribe": true] : nil,
            "completions": hasCompletions ? [:] : nil,
            "logging": [:],
        ])
    }
}

/// Where a connection writes its outgoing messages: one complete line (newline included)
/// per call. Implementations must be safe to call from any thread and must not interleave
/// lines.
///
/// A transport that delivers messages on more than one channel (Streamable HTTP: a response
/// stream per request, and a session stream for the rest) implements
/// ``send(_:route:)``, which says which request each message belongs to; a byte stream
/// (stdio) implements ``send(_:)`` alone.
public protocol MessageSink: Sendable {
    func send(_ line: [UInt8])
    /// Writes `line`, which belongs where `route` says. The default ignores the route.
    func send(_ line: [UInt8], route: MessageRoute)
}

extension MessageSink {
    public func send(_ line: [UInt8], route: MessageRoute) { send(line) }
}

/// Which request an outgoing message belongs to.
public enum MessageRoute: Sendable, Equatable {
    /// Belongs to no request: a legacy resource-updated or list-changed notification, a log
    /// message outside any request.
    case unsolicited
    /// Belongs to the request `id` and comes before its response: progress, the request's log
    /// messages, a listen stream's acknowledgment and notifications.
    case partOf(RequestID)
    /// The response (result or error) that ends request `id`; `nil` when the failing message's
    /// id could not be read.
    case response(RequestID?)
}
