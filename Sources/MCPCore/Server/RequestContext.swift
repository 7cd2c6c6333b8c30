import Synchronization

/// Everything a handler may know about, or send for, the request it is serving.
///
/// It carries the era and revision of the request, what the client said about itself, and
/// the request-scoped channels back to the client: progress (when the request carried a
/// `progressToken`) and log messages (at or above the level the client chose). Cancellation
/// arrives as ordinary Swift task cancellation: check `Task.isCancelled` or call
/// `try Task.checkCancellation()` in long handlers.
public struct RequestContext: Sendable {
    /// The JSON-RPC id of the request.
    public let requestID: RequestID
    /// The method being served, such as `tools/call`.
    public let method: String
    /// The era and revision the request speaks.
    public let era: ProtocolEra
    /// The client's self-description (from `initialize`, or this request's `_meta`).
    public let clientInfo: Implementation?
    /// The client's declared capabilities (from `initialize`, or this request's `_meta`).
    public let clientCapabilities: JSONValue
    /// The request's whole `_meta`, for extensions and trace context.
    public let meta: JSONValue?
    /// The progress token the client attached, if any.
    public let progressToken: JSONValue?
    /// The minimum level of log messages this request may produce; `nil` means none.
    public let logLevel: LogLevel?
    /// What the transport passed on from the request's envelope, by lowercased name: the HTTP
    /// headers a Streamable HTTP transport was configured to forward (a voice platform's call
    /// identifier, say), and always the caller's W3C trace context (``traceContextKeys``). Empty
    /// on stdio.
    public internal(set) var transportHeaders: [String: String] = [:]
    /// The W3C trace context's names (`traceparent`, `tracestate`, `baggage`): in a request's
    /// `_meta` (MCP 2026-07-28) or its transport's headers, the caller's trace, which the server
    /// continues.
    public static let traceContextKeys = ["traceparent", "tracestate", "baggage"]
    /// The client's network address, when the transport has one (`nil` on stdio): for audit
    /// records, never for decisions.
    public internal(set) var clientAddress: String?
    /// Who is calling, as the transport established it (``Principal/local`` on stdio).
    public internal(set) var principal: Principal = .local

    let progress: ProgressTracker?
    let connection: ServerConnection?

    /// The request being served by the current task, if any. The engine sets it around every
    /// handler, so code deep inside one (a log handler, say) can reach the request's progress
    /// and log channels without being passed the context.
    @TaskLocal public static var current: RequestContext?

    /// Sends `notifications/progress` for this request when the client asked for progress.
    ///
    /// Progress must grow: a value not greater than the last one sent is dropped, as the
    /// specification requires. Nothing is sent once the request has been answered or
    /// cancelled.
    public func reportProgress(_ progress: Double, total: Double? = nil, message: String? = nil) {
        guard let token = progressToken, let tracker = self.progress, let connection else { return }
        guard tracker.advance(to: progress), connection.isInFlight(requestID) else { return }
        connection.send(
            .notification(
                method: "notifications/progress",
                params: .object(dropping: [
                    "progressToken": token, "progress": .double(progress), "total": total.map(JSONValue.double),
                    "message": message.map(JSONValue.string),
                ])), route: .partOf(requestID))
    }

    /// Sends a `notifications/message` for this request if `level` is at or above the level
    /// the client chose.
    public func log(_ level: LogLevel, _ data: JSONValue, logger: String? = nil) {
        guard let minimum = logLevel, level >= minimum, let connection, connection.isInFlight(requestID) else { return }
        connection.send(
            .notification(
                method: "notifications/message",
                params: .object(dropping: [
                    "level": .string(level.rawValue), "logger": logger.map(JSONValue.string), "data": data,
                ])), route: .partOf(requestID))
    }
}

/// Remembers the last progress value sent for one request so that progress only grows.
final class ProgressTracker: Sendable {
    private let last = Mutex<Double?>(nil)

    func advance(to value: Double) -> Bool {
        last.withLock { last in
            if let previous = last, value <= previous { return false }
            last = value
            return true
        }
    }
}
