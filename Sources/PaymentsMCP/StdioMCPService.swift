public import MCPCore
public import ServiceLifecycle

/// MCP over stdio as a lifecycle service: it ends at the end of standard input, or on graceful
/// shutdown or cancellation (``MCPServer/stop()``: listen streams end with their result, queued messages are
/// written).
public struct StdioMCPService: Service, CustomStringConvertible {
    public var description: String { "mcp-stdio" }
    public let server: MCPServer
    /// Holds back the lines that need what the host is still starting (``PaymentsMCP/startingGate()``).
    public let gate: InputGate?
    /// The serving already under way, when the host started it before its service group.
    private let started: StdioTransport.Serving?
    /// What ``run()`` opens: the lines held until the service group runs the service.
    private let heldUntilRun: InputGate?

    /// Serves `server` over stdio, its input through `gate`, once the service runs.
    public init(server: MCPServer, gate: InputGate? = nil) {
        self.server = server
        self.gate = gate
        started = nil
        heldUntilRun = nil
    }

    /// Serves `server` over stdio from now on, its input through `gate`; the service, when it
    /// runs, owns the serving as if it had started it (its end, shutdown and cancellation). A
    /// client's `initialize` is answered while the host starts the rest of itself: at a cold
    /// start that is milliseconds before its services run (Docs/benchmarks.md).
    ///
    /// With `handshakeOnlyUntilRun`, a host that begins serving before it has made its tools
    /// (whose server declares them, ``MCPServer/Options/declaredFeatures``) has every line but
    /// `initialize`, `server/discover` and `ping` wait, in order, until the group runs the
    /// service (at most 5 s): the tools are installed by then, and a client's stop (SIGTERM) is
    /// the group's graceful shutdown.
    public static func starting(
        server: MCPServer, gate: InputGate? = nil, handshakeOnlyUntilRun: Bool = false
    ) -> StdioMCPService {
        let held = handshakeOnlyUntilRun ? InputGate(holdingAllBut: Self.handshake, atMost: .seconds(5)) : nil
        let input = [held, gate].compactMap { $0 }
        let combined = input.count > 1 ? InputGate(each: input) : input.first
        return StdioMCPService(
            server: server, gate: combined, started: server.startStdio(gate: combined), heldUntilRun: held)
    }

    /// Whether the client's input has ended (or the server stopped) already: always `false`
    /// until a service made by ``starting(server:gate:handshakeOnlyUntilRun:)`` has seen it.
    public var inputEnded: Bool { started?.hasEnded ?? false }

    /// What a server answers before its tools are in: the handshake of either era, and `ping`.
    static let handshake: Set<String> = ["initialize", "server/discover", "ping"]

    private init(server: MCPServer, gate: InputGate?, started: StdioTransport.Serving, heldUntilRun: InputGate?) {
        self.server = server
        self.gate = gate
        self.started = started
        self.heldUntilRun = heldUntilRun
    }

    /// The gate for a payments server: tool calls, resource reads and prompts wait (at most 2 s)
    /// until the system's local parts listen, so a client's first call finds it up; the handshake
    /// and lists are answered at once.
    /// An `open` gate holds nothing (a tunnel's URL is not waited for: until it comes, tools say so).
    public static func startingGate(open: Bool = false) -> InputGate {
        let gate = InputGate(
            holding: ["tools/call", "resources/read", "prompts/get", "resources/subscribe"], atMost: .seconds(2))
        if open { gate.open() }
        return gate
    }

    public func run() async {
        heldUntilRun?.open()
        // Cancellation too (the group cancels when a part fails): serving ends the same way.
        await withTaskCancellationOrGracefulShutdownHandler {
            if let started { await started.finished() } else { await server.serveStdio(gate: gate) }
        } onCancelOrGracefulShutdown: {
            server.stop()
        }
    }
}
