public import MCPCore
public import ServiceLifecycle

/// MCP over stdio as a lifecycle service: it ends at the end of standard input, or on graceful
/// shutdown or cancellation (``MCPServer/stop()``: listen streams end with their result, queued messages are
/// written).
public struct StdioMCPService: Service, CustomStringConvertible {
    public var description: String { "mcp-stdio" }
    public let server: MCPServer
    /// What must happen before standard input is read (bounded by its own wait).
    public var before: @Sendable () async -> Void = {}

    /// Serves `server` over stdio, once `before` has happened.
    public init(server: MCPServer, before: @escaping @Sendable () async -> Void = {}) {
        self.server = server
        self.before = before
    }

    public func run() async {
        // Cancellation too (the group cancels when a part fails): serving ends the same way.
        await withTaskCancellationOrGracefulShutdownHandler {
            await before()
            await server.serveStdio()
        } onCancelOrGracefulShutdown: {
            server.stop()
        }
    }
}
