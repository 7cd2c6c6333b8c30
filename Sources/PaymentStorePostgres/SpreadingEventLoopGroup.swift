#if canImport(Dispatch)
import Dispatch
#endif
import NIOCore

/// NIO's event loops for the connection pool, with `any()` taking turns as `next()` does.
///
/// PostgresNIO opens each connection on `eventLoopGroup.any()`, which is the calling thread's own
/// loop when it is one. The pool opens connections from its own task, so with NIO's loops as the
/// global executor (`agent-payments --http`) every connection landed on one loop, and with them
/// every task a reply resumes: one core did the database's work of the whole process while the
/// other served half the HTTP connections. Taking turns spreads the connections over the loops.
final class SpreadingEventLoopGroup: EventLoopGroup, Sendable {
    private let base: any EventLoopGroup

    init(_ base: any EventLoopGroup) { self.base = base }

    func next() -> any EventLoop { base.next() }

    func any() -> any EventLoop { base.next() }

    func makeIterator() -> EventLoopIterator { base.makeIterator() }

    #if canImport(Dispatch)
    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        base.shutdownGracefully(queue: queue, callback)
    }
    #endif
}
