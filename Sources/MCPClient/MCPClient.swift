public import MCPCore
import Synchronization

/// A small but real MCP client: it opens a connection in either era, correlates responses
/// with requests, streams notifications, and cancels what it no longer wants.
///
/// It drives servers from Swift tests, benchmarks and demos:
///
/// ```swift
/// let client = MCPClient(channel: try ChildProcessChannel(executable: path), era: .modern())
/// try await client.connect()
/// let result = try await client.request("tools/call", ["name": "echo", "arguments": ["text": "hi"]])
/// ```
///
/// In the modern era every request is stamped with the protocol version, client info and
/// capabilities in `_meta`, as 2026-07-28 requires.
public final class MCPClient: Sendable {
    /// How the client opens the connection.
    public enum Era: Sendable {
        /// `initialize` with `version`, then `notifications/initialized`.
        case legacy(version: String = ProtocolVersion.latestLegacy)
        /// Per-request `_meta` at `version`; `connect()` sends `server/discover`.
        case modern(version: String = ProtocolVersion.latestModern)
    }

    /// A failure to get a result.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The server answered with a JSON-RPC error.
        case server(JSONRPCError)
        /// The connection ended before the answer came.
        case disconnected

        public var description: String {
            switch self {
            case .server(let error): return error.description
            case .disconnected: return "the server closed the connection"
            }
        }
    }

    private struct State {
        var nextID: Int64 = 1
        var pending: [RequestID: CheckedContinuation<JSONValue, any Error>] = [:]
        var finished = false
    }

    public let channel: any ClientChannel
    public let era: Era
    public let clientInfo: Implementation
    /// Server notifications (and anything else that is not a response), in arrival order.
    public let notifications: AsyncStream<JSONRPCMessage>
    private let notificationSink: AsyncStream<JSONRPCMessage>.Continuation
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared = Shared()

    public init(
        channel: any ClientChannel, era: Era = .modern(),
        clientInfo: Implementation = Implementation(name: "mcpcore-client", version: "1.0.0")
    ) {
        self.channel = channel
        self.era = era
        self.clientInfo = clientInfo
        (notifications, notificationSink) = AsyncStream<JSONRPCMessage>.makeStream()
        Task { [channel, shared, notificationSink] in
            let state = shared
            for await line in channel.incoming {
                switch JSONRPCMessage.decode(line) {
                case .success(.result(let id, let result)):
                    let waiter = state.state.withLock { $0.pending.removeValue(forKey: id) }
                    waiter?.resume(returning: result)
                case .success(.error(let id?, let error)):
                    let waiter = state.state.withLock { $0.pending.removeValue(forKey: id) }
                    waiter?.resume(throwing: Failure.server(error))
                case .success(let message):
                    notificationSink.yield(message)
                case .failure:
                    continue
                }
            }
            let waiters = state.state.withLock { state in
                state.finished = true
                defer { state.pending.removeAll() }
                return Array(state.pending.values)
            }
            for waiter in waiters { waiter.resume(throwing: Failure.disconnected) }
            notificationSink.finish()
        }
    }

    /// Opens the connection: `initialize` + `notifications/initialized` (legacy) or
    /// `server/discover` (modern). Returns the server's answer.
    @discardableResult
    public func connect() async throws -> JSONValue {
        switch era {
        case .legacy(let version):
            let result = try await request(
                "initialize",
                [
                    "protocolVersion": .string(version), "capabilities": [:], "clientInfo": clientInfo.json,
                ])
            notify("notifications/initialized")
            return result
        case .modern:
            return try await request("server/discover")
        }
    }

    /// The `_meta` a modern request carries.
    public func modernMeta(logLevel: LogLevel? = nil) -> [String: JSONValue]? {
        guard case .modern(let version) = era else { return nil }
        var meta: [String: JSONValue] = [
            MetaKey.protocolVersion: .string(version), MetaKey.clientCapabilities: [:],
            MetaKey.clientInfo: clientInfo.json,
        ]
        if let logLevel { meta[MetaKey.logLevel] = .string(logLevel.rawValue) }
        return meta
    }

    /// Sends a request and waits for its result. Cancelling the calling task sends
    /// `notifications/cancelled` and throws `CancellationError`.
    public func request(
        _ method: String, _ params: JSONValue = [:], progressToken: JSONValue? = nil,
        logLevel: LogLevel? = nil
    ) async throws -> JSONValue {
        let id = shared.state.withLock { state -> RequestID in
            defer { state.nextID += 1 }
            return .number(state.nextID)
        }
        var params = params.objectValue ?? [:]
        var meta = params["_meta"]?.objectValue ?? [:]
        if let stamp = modernMeta(logLevel: logLevel) { meta.merge(stamp) { existing, _ in existing } }
        if let progressToken { meta[MetaKey.progressToken] = progressToken }
        if !meta.isEmpty { params["_meta"] = .object(meta) }
        let line = JSONRPCMessage.request(id: id, method: method, params: .object(params)).encodedLine()

        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSONValue, any Error>) in
                let accepted = shared.state.withLock { state -> Bool in
                    guard !state.finished else { return false }
                    state.pending[id] = continuation
                    return true
                }
                guard accepted else {
                    continuation.resume(throwing: Failure.disconnected)
                    return
                }
                channel.send(line)
            }
        } onCancel: {
            let waiter = shared.state.withLock { $0.pending.removeValue(forKey: id) }
            guard let waiter else { return }
            notify("notifications/cancelled", ["requestId": id.json, "reason": "cancelled by the client"])
            waiter.resume(throwing: CancellationError())
        }
    }

    /// Sends a notification.
    public func notify(_ method: String, _ params: JSONValue? = nil) {
        channel.send(JSONRPCMessage.notification(method: method, params: params).encodedLine())
    }

    /// Calls a tool and returns the `CallToolResult` object.
    public func callTool(
        _ name: String, arguments: JSONValue = [:], progressToken: JSONValue? = nil
    ) async throws -> JSONValue {
        try await request("tools/call", ["name": .string(name), "arguments": arguments], progressToken: progressToken)
    }

    /// Reads a resource and returns its first text content.
    public func readText(_ uri: String) async throws -> String? {
        let result = try await request("resources/read", ["uri": .string(uri)])
        return result["contents"]?.arrayValue?.first?["text"]?.stringValue
    }

    /// Closes the client's side of the channel; a stdio server then exits.
    public func close() {
        channel.close()
    }
}
