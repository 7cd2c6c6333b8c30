import Synchronization
import Testing
@testable import MCPCore

/// Records each outgoing message with the route the engine gave it.
final class RoutingSink: MessageSink {
    private let sent = Mutex<[(method: String?, route: MessageRoute)]>([])

    func send(_ line: [UInt8]) { Issue.record("a routing transport is always told the route") }

    func send(_ line: [UInt8], route: MessageRoute) {
        let value = (try? JSONValue(parsing: line.dropLast())) ?? .null
        sent.withLock { $0.append((value["method"]?.stringValue, route)) }
    }

    var routes: [(method: String?, route: MessageRoute)] { sent.withLock { $0 } }
}

/// The engine tells a transport with a channel per request (Streamable HTTP) which request each
/// message belongs to: a request's progress and logs and its response go to it; a listen
/// stream's acknowledgment and updates to the listen request; legacy broadcasts to none.
@Suite struct MessageRouteTests {
    @Test func progressLogsAndTheResponseBelongToTheirRequest() async throws {
        let server = makeServer()
        let sink = RoutingSink()
        let connection = server.connect(sink: sink)
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
                    .utf8))
        connection.receive(Array(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8))
        connection.receive(
            Array(#"{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}"#.utf8))
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":7}}}"#
                    .utf8))
        try await eventually { sink.routes.count >= 6 }
        let routes = sink.routes
        #expect(routes[0].route == .response(.number(1)))
        #expect(routes[1].route == .response(.number(2)))
        #expect(
            routes[2...].map(\.route) == [
                .partOf(.string("p")), .partOf(.string("p")), .partOf(.string("p")), .response(.string("p")),
            ])
        #expect(
            routes[2...].map(\.method) == [
                "notifications/progress", "notifications/progress", "notifications/message", nil,
            ])

        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"payment://CA1/PK1/status"}}"#
                    .utf8))
        server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
        server.log(.info, "outside any request")
        try await eventually { sink.routes.count >= 9 }
        #expect(sink.routes[6...].map(\.route) == [.response(.number(3)), .unsolicited, .unsolicited])
        connection.close()
    }

    @Test func aListenStreamsMessagesBelongToTheListenRequest() async throws {
        let server = makeServer()
        let sink = RoutingSink()
        let connection = server.connect(sink: sink)
        let meta =
            #""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["payment://CA1/PK1/status"]},\#(meta)}}"#
                    .utf8))
        server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
        server.endSubscriptions()
        try await eventually { sink.routes.count >= 4 }
        #expect(
            sink.routes.map(\.route) == [
                .partOf(.number(9)), .partOf(.number(9)), .response(.number(9)), .partOf(.number(9)),
            ])
        connection.close()
    }

    /// Waits for `condition`, up to 30 s (the engine answers on tasks of its own; a loaded 2-core
    /// CI machine once stalled every test for 15 s).
    func eventually(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within 30 s")
                return
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
