import Foundation
import HTTPTestSupport
import Hummingbird
import ListenerGuard
import Logging
import MCPCore
import NIOCore
import Synchronization
import Testing
@testable import MCPHTTP

/// How many `slow` tool calls were cancelled (the suite runs serialized).
let slowToolsCancelled = Mutex(0)

/// A request context that knows its connection, as the payments listener's does.
struct ChannelContext: Hummingbird.RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        channel = source.channel
    }
}

/// The transport on a real loopback listener, driven over raw sockets where the test needs to
/// see or cut the connection itself. (The official Python client takes whole payments through
/// it in Tests/interop/test_http.py.)
@Suite(.serialized) struct TransportTests {
    static let meta =
        #""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#

    func makeServer() -> MCPServer {
        let server = MCPServer(info: Implementation(name: "http-unit", version: "1"))
        server.register(
            ResourceTemplate(try! URITemplate("payment://{callSid}/{paymentSid}/status"), name: "status") { _, uri, _ in
                [ResourceContents(uri: uri, mimeType: "application/json", text: "{}")]
            })
        server.register(
            Tool(name: "guarded", inputSchema: ["type": "object"], requiredScopes: ["payments:charge"]) { call in
                ToolResult(text: "done for \(call.context.principal.id)")
            })
        server.register(
            Tool(name: "open", inputSchema: ["type": "object"]) { call in
                ToolResult(text: "done for \(call.context.principal.id)")
            })
        server.register(
            Tool(name: "logs", inputSchema: ["type": "object"]) { call in
                call.context.log(.info, "progressed", logger: "unit")
                return ToolResult(text: "logged")
            })
        server.register(
            Tool(name: "slow", inputSchema: ["type": "object"]) { call in
                call.context.reportProgress(1)
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    slowToolsCancelled.withLock { $0 += 1 }
                    throw error
                }
                return ToolResult(text: "late")
            })
        return server
    }

    /// Serves `transport` on a guarded loopback listener while `body` runs.
    func withEndpoint(
        _ configuration: MCPHTTPConfiguration = MCPHTTPConfiguration(keepAliveInterval: .seconds(3600)),
        _ body: (Int, MCPHTTPTransport, MCPServer) async throws -> Void
    ) async throws {
        var logger = Logger(label: "http-test")
        logger.logLevel = .critical
        let server = makeServer()
        let transport = MCPHTTPTransport(server: server, configuration: configuration, logger: logger)
        let router = Router(context: ChannelContext.self)
        transport.addRoutes(to: router, channel: { $0.channel })
        let port = PortBox()
        let app = Application(
            router: router, server: .guardedHTTP1(limits: ListenerLimits(), logger: logger),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { port.set($0.localAddress?.port ?? 0) }, logger: logger)
        try await withServing([app]) {
            while port.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
            transport.setBaseURL("http://127.0.0.1:\(port.value)")
            try await body(port.value, transport, server)
        }
    }

    func post(_ socket: TestSocket, _ body: String, headers: [String: String] = [:]) throws {
        var head =
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        try socket.write(head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
    }

    /// Waits for `condition`, up to 20 s: a liveness bound, not a timing claim (a loaded CI machine
    /// once took more than 5 s to see a closed stream's slot come back).
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("not within 30 s: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func closingAListenStreamEndsItsRequestWithoutWaitingForAWrite() async throws {
        try await withEndpoint { port, transport, _ in
            let socket = try TestSocket(port: port)
            try post(
                socket,
                #"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["payment://CA1/PK1/status"]},\#(Self.meta)}}"#,
                headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"])
            let opened = await socket.read(until: "acknowledged")
            #expect(opened.hasPrefix("HTTP/1.1 200"))
            #expect(opened.lowercased().contains("content-type: text/event-stream"))
            #expect(opened.lowercased().contains("x-accel-buffering: no"))
            #expect(transport.openStreamCount == 1)
            // No keep-alive for an hour and no notification: only the close can end it.
            socket.shut()
            try await eventually("the stream's slot is released") { transport.openStreamCount == 0 }
        }
    }

    @Test func aModernRequestWithProgressStreamsThenClosingItCancelsTheTool() async throws {
        try await withEndpoint { port, _, _ in
            let socket = try TestSocket(port: port)
            try post(
                socket,
                #"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"slow","arguments":{},\#(Self.meta.dropLast()),"progressToken":1}}}"#,
                headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "slow"])
            let progress = await socket.read(until: "notifications/progress")
            #expect(progress.contains("event: message\ndata: {"), "\(progress)")
            socket.shut()
            // The engine's connection for that POST is closed (its tool task cancelled): a
            // resource update reaches no one, and nothing is left open.
            try await eventually("the tool is cancelled") { slowToolsCancelled.withLock { $0 } == 1 }
        }
    }

    @Test func legacySessionsGetTheirBacklogOnTheirStreamAndExpireWhenIdle() async throws {
        try await withEndpoint(
            MCPHTTPConfiguration(sessionIdleTimeout: .seconds(60), keepAliveInterval: .seconds(3600))
        ) { port, transport, server in
            let socket = try TestSocket(port: port)
            try post(
                socket,
                #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
            )
            let reply = await socket.read(until: "}}}")
            let session = try #require(
                reply.split(separator: "\r\n").first { $0.lowercased().hasPrefix("mcp-session-id:") }?
                    .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
            #expect(session.count == 64)
            let body =
                #"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"payment://CA1/PK1/status"}}"#
            let next = try TestSocket(port: port)
            try post(next, body, headers: ["Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"])
            #expect(await next.read(until: "\"id\":2").contains("200 OK"))
            // No stream is open yet: the update waits in the backlog.
            server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
            let stream = try TestSocket(port: port)
            try stream.write(
                "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: \(session)\r\n\r\n")
            #expect(await stream.read(until: "resources/updated").contains("notifications/resources/updated"))
            // A second stream on the same session is refused.
            let second = try TestSocket(port: port)
            try second.write(
                "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: \(session)\r\n\r\n")
            #expect(await second.read(until: "\r\n").hasPrefix("HTTP/1.1 409"))

            // With its stream open the session is not idle, however old; once closed, it expires.
            #expect(transport.expireIdleSessions(now: .now + .seconds(120)) == 0)
            stream.shut()
            try await eventually("the stream is closed") { transport.openStreamCount == 0 }
            #expect(transport.expireIdleSessions(now: .now + .seconds(30)) == 0)
            #expect(transport.expireIdleSessions(now: .now + .seconds(120)) == 1)
            let late = try TestSocket(port: port)
            try post(late, body, headers: ["Mcp-Session-Id": session])
            #expect(await late.read(until: "\r\n").hasPrefix("HTTP/1.1 404"))
        }
    }

    @Test func shutdownEndsListenStreamsWithTheirResult() async throws {
        try await withEndpoint { port, transport, _ in
            let socket = try TestSocket(port: port)
            try post(
                socket,
                #"{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["payment://CA1/PK1/status"]},\#(Self.meta)}}"#,
                headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"])
            _ = await socket.read(until: "acknowledged")
            await transport.shutdown(waitingUpTo: .seconds(3))
            let rest = await socket.read(until: "\"resultType\"")
            #expect(rest.contains(#""id":7"#), "\(rest)")
            #expect(transport.openStreamCount == 0)
            let refused = try TestSocket(port: port)
            try post(
                refused, #"{"jsonrpc":"2.0","id":8,"method":"server/discover","params":{\#(Self.meta)}}"#,
                headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"])
            #expect(await refused.read(until: "\r\n").hasPrefix("HTTP/1.1 503"))
        }
    }

    @Test func streamsPerClientAreBounded() async throws {
        try await withEndpoint(MCPHTTPConfiguration(maximumStreamsPerClient: 2, keepAliveInterval: .seconds(3600))) {
            port, transport, _ in
            // One after another: each listen is acknowledged before the next is sent, so which
            // one finds the cap full does not depend on how the event loops order them.
            var sockets: [TestSocket] = []
            for id in 1...3 {
                let socket = try TestSocket(port: port)
                try post(
                    socket,
                    #"{"jsonrpc":"2.0","id":\#(id),"method":"subscriptions/listen","params":{"notifications":{},\#(Self.meta)}}"#,
                    headers: ["MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"])
                sockets.append(socket)
                if id < 3 {
                    #expect(await socket.read(until: "acknowledged").hasPrefix("HTTP/1.1 200"), "listen \(id)")
                }
            }
            #expect(await sockets[2].read(until: "\r\n").hasPrefix("HTTP/1.1 429"))
            sockets[0].shut()
            try await eventually("one slot is free") { transport.openStreamCount == 1 }
        }
    }

    static let reader = String(repeating: "r", count: 32)
    static let charger = String(repeating: "c", count: 32)

    func tokens() throws -> StaticTokenAuthenticator {
        try StaticTokenAuthenticator(entries: [
            StaticToken(name: "reader", token: Self.reader, scopes: ["payments:read"]),
            StaticToken(name: "charger", token: Self.charger, scopes: ["payments:read", "payments:charge"]),
        ])
    }

    func callTool(_ port: Int, _ name: String, token: String, id: Int = 1) async throws -> String {
        let socket = try TestSocket(port: port)
        try post(
            socket,
            #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(name)","arguments":{},\#(Self.meta)}}"#,
            headers: [
                "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name,
                "Authorization": "Bearer " + token,
                "Connection": "close",
            ])
        return await socket.readUntilClosed()
    }

    @Test func aToolBeyondTheTokensScopesIsA403StepUpAndItIsNotListed() async throws {
        try await withEndpoint(MCPHTTPConfiguration(authenticator: try tokens(), keepAliveInterval: .seconds(3600))) {
            port, _, _ in
            let refused = try await callTool(port, "guarded", token: Self.reader)
            #expect(refused.hasPrefix("HTTP/1.1 403"), "\(refused)")
            #expect(
                refused.contains(#"WWW-Authenticate: Bearer error="insufficient_scope", scope="payments:charge""#),
                "\(refused)")
            let allowed = try await callTool(port, "guarded", token: Self.charger)
            #expect(allowed.hasPrefix("HTTP/1.1 200") && allowed.contains("done for token:charger"), "\(allowed)")
            let list = try TestSocket(port: port)
            try post(
                list, #"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{\#(Self.meta)}}"#,
                headers: [
                    "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list",
                    "Authorization": "Bearer " + Self.reader,
                    "Connection": "close",
                ])
            let listed = await list.readUntilClosed()
            #expect(listed.contains(#""name":"open""#) && !listed.contains(#""name":"guarded""#), "\(listed)")
            #expect(listed.contains(#""cacheScope":"private""#), "a list filtered for one principal is not shared")
        }
    }

    @Test func toolCallsAndRefusedAuthenticationsAreRateLimited() async throws {
        let limits = RateLimits(
            toolCallsPerPrincipal: 6, toolCallsPerAddress: 1000, refusedAuthenticationsPerAddress: 6)
        try await withEndpoint(
            MCPHTTPConfiguration(authenticator: try tokens(), rateLimits: limits, keepAliveInterval: .seconds(3600))
        ) { port, _, _ in
            // A burst of one (6 a minute, bursts of a sixth): the second call at once is over the limit.
            #expect(try await callTool(port, "open", token: Self.reader).hasPrefix("HTTP/1.1 200"))
            let limited = try await callTool(port, "open", token: Self.reader, id: 2)
            #expect(limited.hasPrefix("HTTP/1.1 429") && limited.contains("Retry-After: "), "\(limited)")
            #expect(
                try await callTool(port, "open", token: Self.charger, id: 3).hasPrefix("HTTP/1.1 200"),
                "another principal has its own bucket")
            // Bad tokens: the first is judged (401); past the limit the address is not heard (429),
            // even with a good token, until its bucket refills.
            #expect(
                try await callTool(port, "open", token: String(repeating: "x", count: 32), id: 4).hasPrefix(
                    "HTTP/1.1 401"))
            let blocked = try await callTool(port, "open", token: String(repeating: "y", count: 32), id: 5)
            #expect(blocked.hasPrefix("HTTP/1.1 429") && blocked.contains("Retry-After: "), "blocked: \(blocked)")
        }
    }

    @Test func refusedCredentialsAreToldToTheHostButNeverTheCredential() async throws {
        let told = Mutex<[MCPHTTPConfiguration.RefusedAuthentication]>([])
        var configuration = MCPHTTPConfiguration(
            authenticator: try tokens(), rateLimits: RateLimits(refusedAuthenticationsPerAddress: 6),
            keepAliveInterval: .seconds(3600))
        configuration.onRefusedAuthentication = { refusal in told.withLock { $0.append(refusal) } }
        try await withEndpoint(configuration) { port, _, _ async throws in
            #expect(try await callTool(port, "open", token: Self.reader).hasPrefix("HTTP/1.1 200"))
            #expect(try await callTool(port, "guarded", token: Self.reader, id: 2).hasPrefix("HTTP/1.1 403"))
            let bad = String(repeating: "x", count: 32)
            #expect(try await callTool(port, "open", token: bad, id: 3).hasPrefix("HTTP/1.1 401"))
            // Past the address's limit it is not heard at all, so not told either.
            #expect(try await callTool(port, "open", token: bad, id: 4).hasPrefix("HTTP/1.1 429"))
        }
        let refusals = told.withLock { $0 }
        #expect(refusals.count == 2, "\(refusals)")
        #expect(refusals.first?.reason == "insufficient scope for guarded: payments:charge required")
        #expect(refusals.map(\.principal) == ["token:reader", nil])
        #expect(refusals.allSatisfy { $0.address == "127.0.0.1" && !$0.reason.contains("xxxx") }, "\(refusals)")
    }

    @Test func oneClientCannotTakeEveryLegacySession() async throws {
        try await withEndpoint(
            MCPHTTPConfiguration(
                authenticator: try tokens(), maximumSessions: 10, maximumSessionsPerClient: 2,
                keepAliveInterval: .seconds(3600))
        ) { port, transport, _ in
            func initialize(_ token: String, id: Int) async throws -> String {
                try await openSession(port, token: token, id: id).head
            }
            #expect(try await initialize(Self.reader, id: 1).hasPrefix("HTTP/1.1 200"))
            #expect(try await initialize(Self.reader, id: 2).hasPrefix("HTTP/1.1 200"))
            let third = try await initialize(Self.reader, id: 3)
            #expect(third.hasPrefix("HTTP/1.1 429"), "\(third)")
            #expect(
                try await initialize(Self.charger, id: 4).hasPrefix("HTTP/1.1 200"), "another client still gets one")
            #expect(transport.sessionCount == 3)
        }
    }

    // MARK: Legacy sessions (issue 31)

    /// `initialize` over a fresh connection with `token`; the head of the answer and the session id.
    func openSession(_ port: Int, token: String? = nil, id: Int = 1) async throws -> (head: String, session: String?) {
        let socket = try TestSocket(port: port)
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer " + token }
        try post(
            socket,
            #"{"jsonrpc":"2.0","id":\#(id),"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            headers: headers)
        let reply = await socket.read(until: "\r\n\r\n")
        let session = reply.split(separator: "\r\n").first { $0.lowercased().hasPrefix("mcp-session-id:") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces)
        return (reply, session)
    }

    /// A legacy request on `session` over a fresh connection: the whole answer (Connection: close).
    func legacyRequest(_ port: Int, session: String, token: String? = nil, _ body: String) async throws -> String {
        let socket = try TestSocket(port: port)
        var headers = ["Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25", "Connection": "close"]
        if let token { headers["Authorization"] = "Bearer " + token }
        try post(socket, body, headers: headers)
        return await socket.readUntilClosed()
    }

    @Test func aLegacySessionIsItsPrincipalsAndTheServerWideCapIsA503() async throws {
        try await withEndpoint(
            MCPHTTPConfiguration(
                authenticator: try tokens(), maximumSessions: 3, maximumSessionsPerClient: 100,
                keepAliveInterval: .seconds(3600))
        ) { port, transport, _ in
            let (head, session) = try await openSession(port, token: Self.reader)
            #expect(head.hasPrefix("HTTP/1.1 200"))
            let id = try #require(session)
            let ping = #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            #expect(try await legacyRequest(port, session: id, token: Self.reader, ping).hasPrefix("HTTP/1.1 200"))
            // Another principal presenting the same session id: as if it did not exist.
            let stolen = try await legacyRequest(port, session: id, token: Self.charger, ping)
            #expect(stolen.hasPrefix("HTTP/1.1 404"), "\(stolen)")
            // Three sessions in all are allowed, whoever holds them; the fourth is refused with 503.
            #expect(try await openSession(port, token: Self.charger, id: 3).head.hasPrefix("HTTP/1.1 200"))
            #expect(try await openSession(port, token: Self.reader, id: 4).head.hasPrefix("HTTP/1.1 200"))
            let full = try await openSession(port, token: Self.charger, id: 5).head
            #expect(full.hasPrefix("HTTP/1.1 503") && full.contains("Retry-After: 5"), "\(full)")
            #expect(transport.sessionCount == 3)
        }
    }

    @Test func theDefaultsAreAThousandSessionsIdleForThirtyMinutes() async throws {
        let defaults = MCPHTTPConfiguration()
        #expect(defaults.maximumSessions == 1000 && defaults.sessionIdleTimeout == .seconds(1800))
        try await withEndpoint { port, transport, _ in
            let (_, session) = try await openSession(port)
            _ = try #require(session)
            #expect(transport.expireIdleSessions(now: .now + .seconds(1790)) == 0, "not idle for the default yet")
            #expect(transport.expireIdleSessions(now: .now + .seconds(1810)) == 1, "expired at the default")
        }
    }

    /// A session's backlog (what arrives while it has no stream) keeps its newest messages up to
    /// the cap; the stream then carries exactly those.
    @Test func theBacklogKeepsTheNewestMessagesUpToItsCap() async throws {
        try await withEndpoint(MCPHTTPConfiguration(keepAliveInterval: .seconds(3600), sessionBacklog: 3)) {
            port, _, server in
            let id = try #require(try await openSession(port).session)
            for n in 1...5 {
                let body =
                    #"{"jsonrpc":"2.0","id":\#(n + 1),"method":"resources/subscribe","params":{"uri":"payment://CA1/PK\#(n)/status"}}"#
                #expect(try await legacyRequest(port, session: id, body).hasPrefix("HTTP/1.1 200"))
            }
            for n in 1...5 { server.notifyResourceUpdated(uri: "payment://CA1/PK\(n)/status") }
            let stream = try TestSocket(port: port)
            try stream.write(
                "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: \(id)\r\n\r\n")
            let received = await stream.read(until: "PK5/status")
            let updated = (1...5).filter { received.contains("payment://CA1/PK\($0)/status") }
            #expect(updated == [3, 4, 5], "the newest three of five: \(updated)")
        }
    }

    /// A log line written inside one client's request reaches that request's answer, and never
    /// another client's stream.
    @Test func aRequestsLogLinesReachOnlyItsOwnClient() async throws {
        try await withEndpoint { port, _, server in
            let a = try #require(try await openSession(port, id: 1).session)
            let b = try #require(try await openSession(port, id: 2).session)
            for session in [a, b] {
                let level = #"{"jsonrpc":"2.0","id":9,"method":"logging/setLevel","params":{"level":"debug"}}"#
                #expect(try await legacyRequest(port, session: session, level).hasPrefix("HTTP/1.1 200"))
            }
            let subscribe =
                #"{"jsonrpc":"2.0","id":10,"method":"resources/subscribe","params":{"uri":"payment://CA1/PKB/status"}}"#
            #expect(try await legacyRequest(port, session: b, subscribe).hasPrefix("HTTP/1.1 200"))
            let streamB = try TestSocket(port: port)
            try streamB.write(
                "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: \(b)\r\n\r\n")
            #expect(await streamB.read(until: "\r\n\r\n").hasPrefix("HTTP/1.1 200"))
            let call = #"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"logs","arguments":{}}}"#
            let answered = try await legacyRequest(port, session: a, call)
            #expect(answered.contains("progressed"), "the log line is in A's answer: \(answered)")
            // A marker on B's stream, after A's request: whatever B was sent before it is in hand.
            server.notifyResourceUpdated(uri: "payment://CA1/PKB/status")
            let heard = await streamB.read(until: "PKB/status")
            #expect(heard.contains("PKB/status") && !heard.contains("progressed"), "\(heard)")
        }
    }
}
