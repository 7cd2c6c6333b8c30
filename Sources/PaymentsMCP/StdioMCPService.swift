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

    /// Serves `server` over stdio, its input through `gate`.
    public init(server: MCPServer, gate: InputGate? = nil) {
        self.server = server
        self.gate = gate
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
        // Cancellation too (the group cancels when a part fails): serving ends the same way.
        await withTaskCancellationOrGracefulShutdownHandler {
            await server.serveStdio(gate: gate)
        } onCancelOrGracefulShutdown: {
            server.stop()
        }
    }
}
