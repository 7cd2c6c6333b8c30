import NIOCore
import NIOPosix
import Testing

@testable import PaymentStorePostgres

/// The pool's connections are opened over every loop, though the pool asks from one of them.
@Suite struct SpreadingEventLoopGroupTests {
    @Test func connectionsAskedForFromALoopAreSpreadOverAllTheLoops() async throws {
        let base = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let spreading = SpreadingEventLoopGroup(base)
        let asking = base.next()
        func chosen(_ group: any EventLoopGroup) async throws -> Set<ObjectIdentifier> {
            try await asking.submit { Set((0..<4).map { _ in ObjectIdentifier(group.any()) }) }.get()
        }
        // NIO's own `any()` gives the asking loop every time: what put every connection on one.
        #expect(try await chosen(base) == [ObjectIdentifier(asking)])
        #expect(try await chosen(spreading).count == 2)
        try await base.shutdownGracefully()
    }
}
