import CoreMetrics
public import HummingbirdCore
public import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

extension HTTPServerBuilder {
    /// An HTTP/1.1 server that keeps `limits`: slow heads, slow bodies, idle keep-alive
    /// connections, responses left unread and too many pipelined requests close the connection;
    /// past the connection cap a new connection gets `503` and is
    /// closed at once. What it closes or refuses is logged at warning, at most every 10 s.
    public static func guardedHTTP1(limits: ListenerLimits, logger: Logger) -> HTTPServerBuilder {
        let gate = ConnectionGate(limits: limits, logger: logger)
        return HTTPServerBuilder { responder in
            GuardedHTTP1Channel(inner: HTTP1Channel(responder: responder), gate: gate)
        }
    }
}

/// Counts open connections and what was closed or refused, and reports pressure: in the log,
/// and through swift-metrics (no backend chosen here): `agent_payments_connections_open`, and
/// `agent_payments_connections_closed_total` by reason (`refused` past the cap, or the limit
/// that closed it).
final class ConnectionGate: Sendable {
    let limits: ListenerLimits
    let logger: Logger
    /// Open connections of every guarded listener in the process.
    private let openMeter = Meter(label: "agent_payments_connections_open")
    private struct Counts {
        var open = 0
        var refusedSinceReport = 0
        var closedSinceReport: [String: Int] = [:]
        var lastReport: ContinuousClock.Instant?
    }
    private let counts = Mutex(Counts())

    init(limits: ListenerLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    /// Takes a slot for a new connection, or says there is none.
    func admit() -> Bool {
        let admitted = counts.withLock { counts -> Bool in
            guard counts.open < limits.maximumConnections else {
                counts.refusedSinceReport += 1
                return false
            }
            counts.open += 1
            return true
        }
        if admitted {
            openMeter.increment()
        } else {
            Self.countClosed("refused")
            reportIfDue()
        }
        return admitted
    }

    func release() {
        counts.withLock { $0.open -= 1 }
        openMeter.decrement()
    }

    func closed(because reason: String) {
        counts.withLock { $0.closedSinceReport[reason, default: 0] += 1 }
        Self.countClosed(reason)
        reportIfDue()
    }

    private static func countClosed(_ reason: String) {
        Counter(label: "agent_payments_connections_closed_total", dimensions: [("reason", reason)]).increment()
    }

    /// One warning per 10 s at most, with what happened since the last one.
    private func reportIfDue() {
        let now = ContinuousClock.now
        let report = counts.withLock { counts -> (Int, [String: Int], Int)? in
            if let last = counts.lastReport, now - last < .seconds(10) { return nil }
            counts.lastReport = now
            defer {
                counts.refusedSinceReport = 0
                counts.closedSinceReport = [:]
            }
            return (counts.refusedSinceReport, counts.closedSinceReport, counts.open)
        }
        guard let (refused, closed, open) = report, refused > 0 || !closed.isEmpty else { return }
        let reasons = closed.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        logger.warning(
            "listener under pressure: slow or idle clients are being cut off",
            metadata: [
                "connections.open": "\(open)", "connections.limit": "\(limits.maximumConnections)",
                "connections.refused": "\(refused)", "connections.closed": "\(reasons.isEmpty ? "0" : reasons)",
            ])
    }
}

/// HTTP1Channel with the guard's handlers in front.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let gate: ConnectionGate

    var responder: HTTPChannelHandler.Responder { inner.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let admitted = gate.admit()
        let gate = self.gate
        if admitted { channel.closeFuture.whenComplete { _ in gate.release() } }
        return channel.eventLoop.makeCompletedFuture { () -> RequestWatch? in
            guard admitted else {
                // Refused quickly, not queued: a one-line answer, then the connection is closed
                // (on the next tick, once the pipeline below is in place).
                try channel.pipeline.syncOperations.addHandler(RefuseHandler(), position: .first)
                return nil
            }
            let watch = RequestWatch(limits: gate.limits, gate: gate)
            try channel.pipeline.syncOperations.addHandler(RawBytesWatch(watch: watch), position: .first)
            return watch
        }.flatMap { watch in
            inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
                if let watch {
                    // After the HTTP codec: where request heads and ends can be seen.
                    let state = try channel.pipeline.syncOperations.handler(type: HTTPConnectionStateHandler.self)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestPartWatch(watch: watch), position: .before(state))
                }
                return value
            }
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Answers a connection over the cap with `503` and closes it, before any HTTP parsing.
final class RefuseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        context.eventLoop.assumeIsolated().execute {
            // Written from this handler, the first, so it goes straight to the socket.
            var answer = context.channel.allocator.buffer(capacity: 96)
            answer.writeString(
                "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n")
            let channel = context.channel
            context.writeAndFlush(NIOAny(answer)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Whatever the refused client sends is dropped.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// Where one connection stands, and the timer that enforces the limits. Lives on the
/// connection's event loop.
final class RequestWatch: @unchecked Sendable {
    enum Phase {
        /// Waiting for the first byte of a request since this instant (idle keep-alive, or a
        /// new connection).
        case waiting(since: NIODeadline, first: Bool)
        /// Bytes of a request head arriving since the first one.
        case head(started: NIODeadline)
        /// The head is in; the body arrives.
        case body(started: NIODeadline, windowStart: NIODeadline, windowBytes: Int)
        /// The request is in; the server is answering (never timed).
        case responding
    }

    let limits: ListenerLimits
    let gate: ConnectionGate
    var phase: Phase = .waiting(since: .now(), first: true)
    var timer: RepeatedTask?
    /// Requests whose head has arrived and whose response has not ended yet.
    var unanswered = 0
    /// Outbound bytes waiting in the channel at the last check, bytes written towards the socket
    /// since then, and when bytes last left (or none were waiting).
    var lastBuffered = 0
    var queuedSinceCheck = 0
    var lastWriteProgress: NIODeadline = .now()

    init(limits: ListenerLimits, gate: ConnectionGate) {
        self.limits = limits
        self.gate = gate
    }

    func start(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        phase = .waiting(since: .now(), first: true)
        lastWriteProgress = .now()
        let tick = TimeAmount(min(limits.headTimeout, limits.rateWindow, limits.idleTimeout, limits.writeTimeout) / 4)
        let channel = context.channel
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] task in
            let now = NIODeadline.now()
            let buffered = (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if let reason = self.violation(at: now) ?? self.stalledWrite(at: now, buffered: buffered) {
                task.cancel()
                self.gate.closed(because: reason)
                channel.close(promise: nil)
            }
        }
    }

    func stop() {
        timer?.cancel()
        timer = nil
    }

    func bytesArrived(_ count: Int) {
        switch phase {
        case .waiting: phase = .head(started: .now())
        case .body(let started, let windowStart, let bytes):
            phase = .body(started: started, windowStart: windowStart, windowBytes: bytes + count)
        case .head, .responding: break
        }
    }

    func headComplete() {
        let started: NIODeadline
        if case .head(let since) = phase { started = since } else { started = .now() }
        phase = .body(started: started, windowStart: .now(), windowBytes: 0)
    }

    func requestComplete() { phase = .responding }

    /// Counts a request whose head arrived; `false` when it is one more than the connection may
    /// have unanswered.
    func requestStarted() -> Bool {
        unanswered += 1
        return unanswered <= limits.maximumPipelinedRequests
    }

    /// A response ended. The connection waits for its next request only once every request it
    /// sent has been answered: a pipelined one still being answered is not idleness.
    func responseComplete() {
        unanswered = max(0, unanswered - 1)
        if case .responding = phase, unanswered == 0 { phase = .waiting(since: .now(), first: false) }
    }

    /// Bytes written towards the socket (not necessarily sent yet).
    func bytesQueued(_ count: Int) { queuedSinceCheck += count }

    /// Whether the client has left `buffered` outbound bytes unread for longer than the write
    /// timeout: bytes wait, and none left since the last progress. Bytes leaving at any pace
    /// are progress; only a client that takes nothing at all is cut off.
    func stalledWrite(at now: NIODeadline, buffered: Int) -> String? {
        let left = lastBuffered + queuedSinceCheck - buffered
        lastBuffered = buffered
        queuedSinceCheck = 0
        if buffered == 0 || left > 0 {
            lastWriteProgress = now
            return nil
        }
        return now - lastWriteProgress > TimeAmount(limits.writeTimeout) ? "response not read in time" : nil
    }

    /// The limit the connection has broken by `now`, if any.
    func violation(at now: NIODeadline) -> String? {
        switch phase {
        case .waiting(let since, let first):
            let limit = first ? limits.headTimeout : limits.idleTimeout
            return now - since > TimeAmount(limit)
                ? (first ? "sent no request head in time" : "idle between requests") : nil
        case .head(let started):
            return now - started > TimeAmount(limits.headTimeout) ? "slow request head" : nil
        case .body(let started, let windowStart, let bytes):
            if now - started > TimeAmount(limits.requestTimeout) { return "request not complete in time" }
            let window = TimeAmount(limits.rateWindow)
            guard now - windowStart >= window else { return nil }
            let seconds = Double((now - windowStart).nanoseconds) / 1e9
            if Double(bytes) < Double(limits.minimumBodyRate) * seconds { return "body slower than the floor rate" }
            phase = .body(started: started, windowStart: now, windowBytes: 0)
            return nil
        case .responding:
            return nil
        }
    }
}

/// Counts raw bytes as they arrive, before HTTP parsing (a head that never completes is
/// invisible after the parser), and as they are written, next to the socket.
final class RawBytesWatch: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    let watch: RequestWatch

    init(watch: RequestWatch) { self.watch = watch }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { watch.start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        watch.start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { watch.stop() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        watch.bytesArrived(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        watch.bytesQueued(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

/// Sees request heads and ends, and response ends; closes a connection with more requests
/// unanswered than the limit (the parser hands over every request of a burst at once, so the
/// excess is dropped here rather than queued for the application).
final class RequestPartWatch: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    let watch: RequestWatch
    private var closing = false

    init(watch: RequestWatch) { self.watch = watch }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head:
            guard watch.requestStarted() else {
                closing = true
                watch.gate.closed(because: "too many pipelined requests")
                context.close(promise: nil)
                return
            }
            watch.headComplete()
        case .body: break
        case .end: watch.requestComplete()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { watch.responseComplete() }
        context.write(data, promise: promise)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
