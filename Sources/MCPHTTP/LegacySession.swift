import MCPCore
import Synchronization

/// One legacy (2025-03-26 … 2025-11-25) client: an engine connection, opened by `initialize`
/// and named by a random `Mcp-Session-Id`. Messages that belong to a request go to that
/// request's POST response; the rest (resource updates after `resources/subscribe`, list
/// changes, log messages) to the session's GET stream, or, while none is open, to a short
/// backlog that the next stream receives first.
final class LegacySession: MessageSink {
    let id: String
    /// Who opened it: only the same client (token) may use it.
    let principal: String
    let backlogLimit: Int
    let bufferLimit: Int

    private struct State {
        var exchanges: [MCPCore.RequestID: OutboundQueue] = [:]
        var stream: OutboundQueue?
        var backlog: [[UInt8]] = []
        var lastUsed = ContinuousClock.now
        var closed = false
    }
    private let state = Mutex(State())
    private let connectionSlot = Mutex<ServerConnection?>(nil)

    init(id: String, principal: String, backlogLimit: Int, bufferLimit: Int) {
        self.id = id
        self.principal = principal
        self.backlogLimit = backlogLimit
        self.bufferLimit = bufferLimit
    }

    /// 32 bytes from the system's cryptographic generator, as 64 hex digits.
    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        for _ in 0..<4 {
            var word = generator.next() as UInt64
            for _ in 0..<16 {
                bytes.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func attach(_ connection: ServerConnection) {
        connectionSlot.withLock { $0 = connection }
    }

    var connection: ServerConnection {
        // Attached right after creation, before the session is used.
        connectionSlot.withLock { $0! }
    }

    /// The negotiated revision, once `initialize` succeeded.
    var version: String? { connectionSlot.withLock { $0 }?.era?.version }

    func touch() {
        state.withLock { $0.lastUsed = .now }
    }

    /// Whether the session can go: no stream, no request in progress, unused since `cutoff`.
    func isIdle(since cutoff: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.stream == nil && $0.exchanges.isEmpty && $0.lastUsed < cutoff }
    }

    // MARK: Requests

    /// A queue for the response to request `id`; `nil` if a request with that id is in progress.
    func register(_ id: MCPCore.RequestID) -> OutboundQueue? {
        state.withLock { state in
            guard !state.closed, state.exchanges[id] == nil else { return nil }
            let queue = OutboundQueue(limit: bufferLimit)
            state.exchanges[id] = queue
            return queue
        }
    }

    /// The client left before request `id` was answered: the engine cancels it.
    func cancel(_ id: MCPCore.RequestID) {
        let wasOpen = state.withLock { $0.exchanges.removeValue(forKey: id) != nil }
        guard wasOpen else { return }
        connection.receive(
            message: .notification(
                method: "notifications/cancelled",
                params: [
                    "requestId": id.json, "reason": "the client closed the response stream",
                ]))
    }

    // MARK: The session stream

    /// Opens the session's stream, carrying the backlog first; `nil` if one is open already.
    func openStream() -> OutboundQueue? {
        state.withLock { state in
            guard !state.closed, state.stream == nil else { return nil }
            let queue = OutboundQueue(limit: bufferLimit)
            for line in state.backlog { queue.push(.message(line, final: false)) }
            state.backlog.removeAll()
            state.stream = queue
            state.lastUsed = .now
            return queue
        }
    }

    func streamClosed(_ queue: OutboundQueue) {
        state.withLock { state in
            if state.stream === queue { state.stream = nil }
            state.lastUsed = .now
        }
    }

    /// Ends the open stream (graceful shutdown).
    func endStream() {
        state.withLock { $0.stream }?.end(.finished)
    }

    /// Ends the session: requests in progress are cancelled, the stream closes.
    func close() {
        let (exchanges, stream) = state.withLock { state -> ([OutboundQueue], OutboundQueue?) in
            state.closed = true
            defer {
                state.exchanges.removeAll()
                state.stream = nil
                state.backlog.removeAll()
            }
            return (Array(state.exchanges.values), state.stream)
        }
        for queue in exchanges { queue.end(.finished) }
        stream?.end(.finished)
        connectionSlot.withLock { $0 }?.close()
    }

    // MARK: MessageSink

    func send(_ line: [UInt8]) { send(line, route: .unsolicited) }

    func send(_ line: [UInt8], route: MessageRoute) {
        switch route {
        case .partOf(let id):
            state.withLock { $0.exchanges[id] }?.push(.message(line, final: false))
        case .response(let id?):
            state.withLock { $0.exchanges.removeValue(forKey: id) }?.push(.message(line, final: true))
        case .response(nil), .unsolicited:
            let stream = state.withLock { state -> OutboundQueue? in
                guard !state.closed else { return nil }
                if let stream = state.stream { return stream }
                state.backlog.append(line)
                if state.backlog.count > backlogLimit { state.backlog.removeFirst(state.backlog.count - backlogLimit) }
                return nil
            }
            stream?.push(.message(line, final: false))
        }
    }
}
