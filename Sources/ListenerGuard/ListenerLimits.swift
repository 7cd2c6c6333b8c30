import Foundation

/// How long a connection may take over each part of a request, and how many may be open at
/// once: the bounds every listener of agent-payments keeps (the callback receiver, the
/// simulator, and any future HTTP listener), so that slow or idle clients cannot hold the port.
///
/// - A connection must finish its request head within ``headTimeout`` of its first byte (or of
///   being opened, for its first request).
/// - Once the head is in, the body must keep arriving at ``minimumBodyRate`` bytes per second,
///   measured over windows of ``rateWindow``, and the whole request must be in within
///   ``requestTimeout`` of its first byte.
/// - Between keep-alive requests a connection may sit idle for ``idleTimeout``.
/// - A response the client does not read is cut off: once bytes wait to be sent and none has
///   left for ``writeTimeout``, the connection is closed.
/// - A connection may have at most ``maximumPipelinedRequests`` requests received and not yet
///   answered (HTTP pipelining); a request past that closes it.
/// - At most ``maximumConnections`` are open at once; past that, a new connection is answered
///   `503` and closed at once instead of waiting in the kernel's queue.
///
/// How long the server takes to answer is never timed: its own work (and a long-lived event
/// stream) is not the client's slowness. Only a client that stops taking what is sent is.
public struct ListenerLimits: Sendable, Equatable {
    public var headTimeout: Duration
    public var minimumBodyRate: Int
    public var rateWindow: Duration
    public var requestTimeout: Duration
    public var idleTimeout: Duration
    /// How long bytes of a response may wait to be sent with none of them leaving (the client
    /// reads nothing) before the connection is closed.
    public var writeTimeout: Duration
    /// Requests a connection may have received and not yet answered; one more closes it, so a
    /// client that sends requests without reading the answers cannot queue work without bound.
    public var maximumPipelinedRequests: Int
    public var maximumConnections: Int
    /// The kernel's queue of connections not yet accepted (`listen(2)`'s backlog): long enough
    /// that a burst is taken in and judged by the limits above rather than dropped unseen.
    public var backlog: Int

    public init(
        headTimeout: Duration = .seconds(5), minimumBodyRate: Int = 1024, rateWindow: Duration = .seconds(2),
        requestTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(15),
        writeTimeout: Duration = .seconds(30), maximumPipelinedRequests: Int = 16,
        maximumConnections: Int = ListenerLimits.defaultMaximumConnections(), backlog: Int = 4096
    ) {
        self.backlog = backlog
        self.headTimeout = headTimeout
        self.minimumBodyRate = minimumBodyRate
        self.rateWindow = rateWindow
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.writeTimeout = writeTimeout
        self.maximumPipelinedRequests = maximumPipelinedRequests
        self.maximumConnections = maximumConnections
    }

    /// Open files kept back for everything but client connections (outbound HTTP, logs, the
    /// tunnel's pipes, the event loops).
    public static let reservedFileDescriptors = 128

    /// The open-file limit now, less ``reservedFileDescriptors``, at most 10,000 and at least 16.
    public static func defaultMaximumConnections() -> Int {
        let soft = FileDescriptorLimit.current().soft
        return max(16, min(10_000, soft - reservedFileDescriptors))
    }
}
