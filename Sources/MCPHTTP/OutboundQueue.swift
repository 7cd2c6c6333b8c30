import MCPCore
import NIOCore
import Synchronization

/// What travels from the engine to one HTTP response: the messages of one request (or of a
/// legacy session's stream), keep-alive ticks, and the end.
enum Outbound: Sendable {
    /// One JSON-RPC message as a line (newline included); `final` for the response that ends
    /// the request.
    case message([UInt8], final: Bool)
    case keepAlive
}

/// A single-consumer queue between the engine's sink (any thread) and the task writing one
/// HTTP response. Bounded: past ``limit`` undelivered items the oldest non-final ones are
/// dropped (a client too slow to read its stream loses notifications, which only say "read
/// again", never the response), so a stalled reader cannot grow memory.
final class OutboundQueue: Sendable {
    enum Ending: Sendable, Equatable {
        /// The request was answered, or the stream was ended by the server.
        case finished
        /// The client's connection closed.
        case clientGone
    }

    private struct State {
        var items: [Outbound] = []
        var head = 0
        var waiter: CheckedContinuation<Outbound?, Never>?
        var ending: Ending?
        var dropped = 0
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int = 256) {
        self.limit = max(2, limit)
    }

    /// Adds an item for the reader; ignored once the queue has ended. A final message ends it.
    func push(_ item: Outbound) {
        let waiter = state.withLock { state -> CheckedContinuation<Outbound?, Never>? in
            guard state.ending == nil else { return nil }
            if case .message(_, final: true) = item { state.ending = .finished }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(item)
            if state.items.count - state.head > limit,
                let index = state.items[state.head...].firstIndex(where: {
                    if case .message(_, final: true) = $0 { return false }
                    return true
                })
            {
                state.items.remove(at: index)
                state.dropped += 1
            }
            return nil
        }
        waiter?.resume(returning: item)
    }

    /// Ends the queue: the reader gets what is queued, then `nil`.
    func end(_ ending: Ending) {
        let waiter = state.withLock { state -> CheckedContinuation<Outbound?, Never>? in
            if state.ending == nil || ending == .clientGone { state.ending = ending }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// How the queue ended, once it has.
    var ending: Ending? { state.withLock { $0.ending } }

    /// Notifications dropped because the reader fell behind.
    var dropped: Int { state.withLock { $0.dropped } }

    /// The next item, or `nil` once the queue has ended and is drained (or the task is
    /// cancelled).
    func next() async -> Outbound? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Outbound?? in
                    if state.head < state.items.count {
                        let item = state.items[state.head]
                        state.head += 1
                        if state.head > 64, state.head * 2 > state.items.count {
                            state.items.removeFirst(state.head)
                            state.head = 0
                        }
                        return .some(item)
                    }
                    if state.ending != nil || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Outbound?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}

/// Calls back when a client's connection closes or its client stops sending (the listener
/// allows half-closed connections, so a client that closes its socket first shows as the end of
/// its input), with one watch per connection however many responses it carries (keep-alive), so
/// an event stream notices its client leave without a write, and nothing accumulates on a
/// long-lived connection.
final class ConnectionWatch: Sendable {
    private struct Watched {
        var nextToken: UInt64 = 0
        var observers: [ObjectIdentifier: [UInt64: @Sendable () -> Void]] = [:]
    }
    private let state = Mutex(Watched())

    /// Calls `onClose` when `channel` closes (at once if it has); returns a token for
    /// ``stopObserving(_:token:)``.
    func observe(_ channel: any Channel, _ onClose: @escaping @Sendable () -> Void) -> UInt64 {
        let key = ObjectIdentifier(channel)
        let (token, first) = state.withLock { state -> (UInt64, Bool) in
            state.nextToken += 1
            let first = state.observers[key] == nil
            state.observers[key, default: [:]][state.nextToken] = onClose
            return (state.nextToken, first)
        }
        if first {
            // The callback holds the channel until it runs, so its identifier cannot be reused by a
            // new connection while the entry still stands.
            channel.closeFuture.whenComplete { [self, channel] _ in
                withExtendedLifetime(channel) { fire(key, closed: true) }
            }
            channel.eventLoop.execute { [self] in
                // First in the pipeline: the end of input is seen before HTTP decoding.
                try? channel.pipeline.syncOperations.addHandler(
                    InputClosedHandler { [self] in fire(key) }, position: .first)
            }
        }
        return token
    }

    private func fire(_ key: ObjectIdentifier, closed: Bool = false) {
        let observers = state.withLock { state -> [UInt64: @Sendable () -> Void] in
            guard let observers = state.observers[key] else { return [:] }
            // At the end of input the entry stays (empty), so the connection is not watched twice;
            // at its close it goes.
            state.observers[key] = closed ? nil : [:]
            return observers
        }
        for observer in observers.values { observer() }
    }

    func stopObserving(_ channel: any Channel, token: UInt64) {
        let key = ObjectIdentifier(channel)
        state.withLock { state in
            state.observers[key]?[token] = nil
            // The entry itself stays until the channel closes: its close callback is registered once.
        }
    }
}

/// Tells when the client's side of a connection ends (its FIN, with half-closure allowed).
final class InputClosedHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let onInputClosed: @Sendable () -> Void

    init(_ onInputClosed: @escaping @Sendable () -> Void) {
        self.onInputClosed = onInputClosed
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { onInputClosed() }
        context.fireUserInboundEventTriggered(event)
    }
}
