public import ServiceLifecycle

/// The transport's lifecycle: idle legacy sessions expire while it runs; on graceful shutdown
/// (or cancellation) every stream ends (``MCPHTTPTransport/shutdown(waitingUpTo:)``) before the
/// listener below it closes. Put it after the service that runs the listener in a
/// `ServiceGroup`, which shuts down in reverse order.
public struct MCPHTTPService: Service, CustomStringConvertible {
    public var description: String { "mcp-http" }
    public let transport: MCPHTTPTransport

    public init(transport: MCPHTTPTransport) {
        self.transport = transport
    }

    public func run() async {
        // With the takeover (EventLoopExecutor, Sources/agent-payments/Entry.swift), every task runs
        // on one of NIO's event loops, this one too: requests then make no hop to Swift's pool.
        let onEventLoops = EventLoopExecutor.isCurrentlyOnEventLoop
        transport.logger.info(
            "MCP over HTTP: tasks run on \(onEventLoops ? "NIO's event loops" : "Swift's default executor")",
            metadata: ["executor": "\(onEventLoops ? "nio" : "default")"])
        let idle = transport.configuration.sessionIdleTimeout
        let interval = max(.seconds(1), min(.seconds(60), idle / 4))
        while (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: interval) })) != nil {
            transport.expireIdleSessions()
        }
        await transport.shutdown()
    }
}
