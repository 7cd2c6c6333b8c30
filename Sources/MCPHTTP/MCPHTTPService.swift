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
        let idle = transport.configuration.sessionIdleTimeout
        let interval = max(.seconds(1), min(.seconds(60), idle / 4))
        while (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: interval) })) != nil {
            transport.expireIdleSessions()
        }
        await transport.shutdown()
    }
}
