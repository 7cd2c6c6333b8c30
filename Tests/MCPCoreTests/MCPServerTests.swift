import Synchronization
import Testing
@testable import MCPCore
import MCPClient
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a small server for the engine tests.
func makeServer(pageSize: Int = 100) -> MCPServer {
    let server = MCPServer(
        info: Implementation(name: "unit", title: "Unit", version: "0.1"), instructions: "Unit-test server.",
        options: MCPServer.Options(pageSize: pageSize))
    server.register(
        Tool(
            name: "echo",
            inputSchema: ["type": "object", "properties": ["text": ["type": "string"]], "required": ["text"]]
        ) { call in ToolResult(text: call.arguments["text"]!.stringValue!) })
    server.register(
        Tool(name: "wait", inputSchema: ["type": "object"]) { call in
            for step in 1...100 {
                try await Task.sleep(for: .milliseconds(20))
                call.context.reportProgress(Double(step))
            }
            return ToolResult(text: "waited")
        })
    server.register(
        Tool(name: "progress", inputSchema: ["type": "object"]) { call in
            call.context.reportProgress(1, total: 3)
            call.context.reportProgress(1, total: 3) // not growing: dropped
            call.context.reportProgress(0.5, total: 3) // not growing: dropped
            call.context.reportProgress(3, total: 3, message: "done")
            call.context.log(.info, "progressed", logger: "unit")
            return ToolResult(text: "ok")
        })
    server.register(
        ResourceTemplate(try! URITemplate("payment://{callSid}/{paymentSid}/status"), name: "status") {
            variables, uri, _ in
            [
                ResourceContents(
                    uri: uri, mimeType: "application/json",
                    text: JSONValue.object(variables.mapValues(JSONValue.string)).serialized())
            ]
        })
    server.register(
        Prompt(name: "StartCapture", arguments: [PromptArgument(name: "callSid", required: true)]) { arguments, _ in
            PromptResult(messages: [PromptMessage(role: .user, text: "Start capture on \(arguments["callSid"]!)")])
        })
    return server
}

/// Records what a connection writes, for tests that drive a connection line by line.
final class CollectingSink: MessageSink {
    private let lines = Mutex<[[UInt8]]>([])

    func send(_ line: [UInt8]) { lines.withLock { $0.append(line) } }

    /// The oldest message not yet taken (`null` if there is none).
    func take() -> JSONValue {
        let line = lines.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        guard let line else { return .null }
        return (try? JSONValue(parsing: line.dropLast())) ?? .null
    }
}

/// Strings signalled from a handler, collected in order.
final class EventLog: Sendable {
    let items = Mutex<[String]>([])
}

/// Collects notifications from a client in the background.
final class NotificationLog: Sendable {
    init(_ client: MCPClient) {
        let box = Box()
        Task { [notifications = client.notifications, box] in
            for await message in notifications { box.append(message) }
        }
        self.box = box
    }

    final class Box: Sendable {
        let items = Mutex<[JSONRPCMessage]>([])
        func append(_ message: JSONRPCMessage) { items.withLock { $0.append(message) } }
    }

    private let box: Box

    var methods: [String] {
        box.items.withLock { $0.compactMap { if case .notification(let method, _) = $0 { method } else { nil } } }
    }

    var all: [JSONRPCMessage] { box.items.withLock { $0 } }

    /// Waits until `count` notifications named `method` arrived (or two seconds pass).
    func wait(for method: String, count: Int = 1) async -> [JSONValue] {
        for _ in 0..<200 {
            let matching = box.items.withLock { items in
                items.compactMap { message -> JSONValue? in
                    if case .notification(method, let params) = message { return params ?? [:] }
                    return nil
                }
            }
            if matching.count >= count { return matching }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return []
    }
}

@Suite struct MCPServerEraTests {
    @Test func legacyHandshakeNegotiatesAndAnswers() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: .legacy(version: "2025-03-26"))
        let result = try await client.connect()
        #expect(result["protocolVersion"] == "2025-03-26")
        #expect(result["serverInfo"]?["title"] == "Unit")
        #expect(result["instructions"] == "Unit-test server.")
        #expect(result["capabilities"]?["tools"] == ["listChanged": true])
        #expect(result["capabilities"]?["completions"] == nil, "no completion provider, so no capability")
        #expect(try await client.request("ping") == [:])
        #expect(result["resultType"] == nil, "legacy results carry no resultType")
    }

    @Test func declaredFeaturesAreCapabilitiesBeforeAnythingIsRegistered() async throws {
        let bare = MCPServer(info: Implementation(name: "bare", version: "1"))
        let declaring = MCPServer(
            info: Implementation(name: "declaring", version: "1"),
            options: .init(declaredFeatures: [.tools, .resources, .completions]))
        let none = try await MCPClient(channel: InProcessChannel(server: bare), era: .legacy()).connect()
        #expect(none["capabilities"] == ["logging": [:]], "only what is registered")
        let some = try await MCPClient(channel: InProcessChannel(server: declaring), era: .legacy()).connect()
        #expect(
            some["capabilities"]
                == [
                    "tools": ["listChanged": true], "resources": ["listChanged": true, "subscribe": true],
                    "completions": [:], "logging": [:],
                ])
    }

    @Test func modernDiscoverCarriesTheRequiredFields() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: .modern())
        let result = try await client.connect()
        #expect(result["supportedVersions"] == ["2026-07-28"])
        #expect(result["resultType"] == "complete")
        #expect(result["ttlMs"] != nil && result["cacheScope"] == "public")
        #expect(result["_meta"]?[MetaKey.serverInfo]?["name"] == "unit")
        let tools = try await client.request("tools/list")
        #expect(tools["resultType"] == "complete" && tools["cacheScope"] == "public")
    }

    @Test func modernRequestsNeedTheirMetaOnceTheEraIsDecided() throws {
        let sink = CollectingSink()
        let connection = makeServer().connect(sink: sink)
        let meta: JSONValue = [MetaKey.protocolVersion: "2026-07-28", MetaKey.clientCapabilities: [:]]
        connection.receive(Array(#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":\#(meta)}}"#.utf8))
        #expect(sink.take()["result"]?["tools"] != nil)
        connection.receive(Array(#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.utf8))
        #expect(sink.take()["error"]?["code"] == -32602)
        connection.receive(Array(#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"_meta":\#(meta)}}"#.utf8))
        #expect(sink.take()["error"]?["code"] == -32601)
        connection.receive(
            Array(#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#.utf8))
        #expect(sink.take()["error"]?["data"]?["supported"] == ["2026-07-28"])
        connection.close()
    }

    @Test func unsupportedModernVersionIsRefusedWithTheList() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: .modern(version: "2030-01-01"))
        do {
            try await client.connect()
            Issue.record("connect succeeded")
        } catch MCPClient.Failure.server(let error) {
            #expect(error.code == -32022)
            #expect(error.data?["supported"]?.arrayValue?.contains("2025-11-25") == true)
        }
    }
}

@Suite struct MCPServerFeatureTests {
    @Test(arguments: [MCPClient.Era.legacy(), .modern()])
    func toolsValidateArgumentsAndReportErrors(era: MCPClient.Era) async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: era)
        try await client.connect()
        let ok = try await client.callTool("echo", arguments: ["text": "hi"])
        #expect(ok["content"]?.arrayValue?.first?["text"] == "hi" && ok["isError"] == nil)
        let bad = try await client.callTool("echo", arguments: [:])
        #expect(bad["isError"] == true)
        #expect(
            bad["content"]?.arrayValue?.first?["text"]?.stringValue?.contains("arguments.text: is required") == true)
        await #expect(throws: MCPClient.Failure.self) { try await client.callTool("missing") }
    }

    @Test func templatedResourcesAndNotFoundCodesPerEra() async throws {
        let legacy = MCPClient(channel: InProcessChannel(server: makeServer()), era: .legacy())
        try await legacy.connect()
        #expect(try await legacy.readText("payment://CA1/PK2/status") == #"{"callSid":"CA1","paymentSid":"PK2"}"#)
        do {
            _ = try await legacy.readText("nothing://here")
            Issue.record("read succeeded")
        } catch MCPClient.Failure.server(let error) {
            #expect(error.code == -32002)
        }
        let modern = MCPClient(channel: InProcessChannel(server: makeServer()), era: .modern())
        try await modern.connect()
        do {
            _ = try await modern.readText("nothing://here")
            Issue.record("read succeeded")
        } catch MCPClient.Failure.server(let error) {
            #expect(error.code == -32602)
        }
    }

    @Test func promptsCheckRequiredArguments() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: .modern())
        try await client.connect()
        let prompt = try await client.request("prompts/get", ["name": "StartCapture", "arguments": ["callSid": "CA9"]])
        #expect(prompt["messages"]?.arrayValue?.first?["content"]?["text"] == "Start capture on CA9")
        do {
            _ = try await client.request("prompts/get", ["name": "StartCapture"])
            Issue.record("missing argument accepted")
        } catch MCPClient.Failure.server(let error) {
            #expect(error.code == -32602 && error.message.contains("callSid"))
        }
    }

    @Test func paginationCoversEveryItemOnce() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer(pageSize: 1)), era: .legacy())
        try await client.connect()
        var names: [String] = []
        var cursor: JSONValue?
        repeat {
            let page = try await client.request("tools/list", cursor.map { ["cursor": $0] } ?? [:])
            names += page["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            cursor = page["nextCursor"]
        } while cursor != nil
        #expect(names == ["echo", "wait", "progress"])
    }

    @Test func progressOnlyGrowsAndLogsFollowTheLevel() async throws {
        let client = MCPClient(channel: InProcessChannel(server: makeServer()), era: .modern())
        let log = NotificationLog(client)
        try await client.connect()
        _ = try await client.request(
            "tools/call", ["name": "progress", "arguments": [:]], progressToken: "tok", logLevel: .info)
        let progress = await log.wait(for: "notifications/progress", count: 2)
        #expect(progress.map { $0["progress"] } == [.double(1), .double(3)])
        #expect(progress.last?["message"] == "done" && progress.last?["progressToken"] == "tok")
        let messages = await log.wait(for: "notifications/message")
        #expect(messages.first?["data"] == "progressed")

        _ = try await client.request(
            "tools/call", ["name": "progress", "arguments": [:]], progressToken: "t2", logLevel: .warning)
        _ = await log.wait(for: "notifications/progress", count: 4)
        #expect(log.methods.filter { $0 == "notifications/message" }.count == 1)
    }

    @Test func cancellationStopsTheHandlerAndSuppressesTheResponse() async throws {
        // A tool that says when it starts, waits until the server cancels it, says so, and then
        // answers anyway: the worst case, whose answer the server must still drop.
        let (events, signal) = AsyncStream<String>.makeStream()
        let seenEvents = EventLog()
        let consumer = Task { for await event in events { seenEvents.items.withLock { $0.append(event) } } }
        defer { consumer.cancel() }
        /// Whether `event` was signalled within 30 seconds (a broken feature fails, never hangs;
        /// a loaded 2-core machine once took more than 10 to start the handler).
        func signalled(_ event: String) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(30)
            while !seenEvents.items.withLock({ $0.contains(event) }) {
                if ContinuousClock.now > deadline { return false }
                try await Task.sleep(for: .milliseconds(1))
            }
            return true
        }
        let server = makeServer()
        server.register(
            Tool(name: "hold", inputSchema: ["type": "object"]) { _ in
                signal.yield("started")
                let (cancelled, wake) = AsyncStream<Void>.makeStream()
                await withTaskCancellationHandler {
                    for await _ in cancelled { break }
                } onCancel: {
                    wake.yield()
                }
                signal.yield("cancelled")
                return ToolResult(text: "answered after cancellation")
            })
        let sink = CollectingSink()
        let connection = server.connect(sink: sink)
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
                    .utf8))
        _ = sink.take()
        connection.receive(
            Array(#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"hold","arguments":{}}}"#.utf8))
        #expect(try await signalled("started"))
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"test"}}"#.utf8))
        #expect(try await signalled("cancelled"), "the server cancelled the handler's task; the client never could")
        // A later request on the same connection is answered; nothing for id 7 came before it.
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after"}}}"#
                    .utf8))
        var messages: [JSONValue] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while !messages.contains(where: { $0["id"] == 8 }), ContinuousClock.now < deadline {
            let message = sink.take()
            if message == .null { try await Task.sleep(for: .milliseconds(1)) } else { messages.append(message) }
        }
        #expect(messages.contains { $0["id"] == 8 }, "the later request was answered")
        #expect(!messages.contains { $0["id"] == 7 }, "\(messages)")
        #expect(!connection.isInFlight(.number(7)))
        connection.close()
    }

    @Test func listenStreamsAcknowledgeThenDeliverOnlyWhatWasAskedFor() async throws {
        let server = makeServer()
        let client = MCPClient(channel: InProcessChannel(server: server), era: .modern())
        let log = NotificationLog(client)
        try await client.connect()
        let listen = Task {
            try await client.request(
                "subscriptions/listen",
                [
                    "notifications": [
                        "resourceSubscriptions": ["payment://CA1/PK1/status"], "promptsListChanged": true,
                    ]
                ])
        }
        let acks = await log.wait(for: "notifications/subscriptions/acknowledged")
        #expect(acks.first?["notifications"]?["resourceSubscriptions"] == ["payment://CA1/PK1/status"])
        server.notifyResourceUpdated(uri: "payment://CA2/PK2/status")
        server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
        server.notifyToolsListChanged()
        server.notifyPromptsListChanged()
        let updates = await log.wait(for: "notifications/resources/updated")
        #expect(updates.map { $0["uri"] } == ["payment://CA1/PK1/status"])
        #expect(updates.first?["_meta"]?[MetaKey.subscriptionID] != nil)
        _ = await log.wait(for: "notifications/prompts/list_changed")
        #expect(!log.methods.contains("notifications/tools/list_changed"))

        server.endSubscriptions()
        let closing = try await listen.value
        #expect(closing["resultType"] == "complete")
    }

    @Test func legacySubscribersGetUpdatesUntilTheyUnsubscribe() async throws {
        let server = makeServer()
        let client = MCPClient(channel: InProcessChannel(server: server), era: .legacy())
        let log = NotificationLog(client)
        try await client.connect()
        _ = try await client.request("resources/subscribe", ["uri": "payment://CA1/PK1/status"])
        server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
        #expect(await log.wait(for: "notifications/resources/updated").count == 1)
        _ = try await client.request("resources/unsubscribe", ["uri": "payment://CA1/PK1/status"])
        server.notifyResourceUpdated(uri: "payment://CA1/PK1/status")
        server.log(.warning, "broadcast")
        _ = await log.wait(for: "notifications/message")
        #expect(log.methods.filter { $0 == "notifications/resources/updated" }.count == 1)
    }

    /// A tool's immediate answer is written before `receive` returns (on the receiving thread,
    /// no task), after the same scope and argument checks as its handler; one that declines
    /// falls back to the handler in a task.
    @Test func anImmediateAnswerIsWrittenBeforeReceiveReturns() async throws {
        let server = makeServer()
        let handled = EventLog()
        server.register(
            Tool(
                name: "lookup",
                inputSchema: ["type": "object", "properties": ["key": ["type": "string"]], "required": ["key"]],
                requiredScopes: ["read"],
                immediate: { call in
                    let key = call.arguments["key"]!.stringValue!
                    guard key != "slow" else { return nil }
                    let request = RequestContext.current.map { "\($0.requestID)" } ?? "none"
                    return ToolResult(text: "\(key) at once for request \(request)")
                }
            ) { call in
                handled.items.withLock { $0.append(call.arguments["key"]!.stringValue!) }
                return ToolResult(text: "in a task")
            })
        func connect(_ principal: Principal) -> (ServerConnection, CollectingSink) {
            let sink = CollectingSink()
            let connection = server.connect(sink: sink, principal: principal)
            connection.receive(
                Array(
                    #"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
                        .utf8))
            _ = sink.take()
            return (connection, sink)
        }
        func call(_ connection: ServerConnection, id: Int, _ arguments: String) {
            connection.receive(
                Array(
                    #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"lookup","arguments":\#(arguments)}}"#
                        .utf8))
        }
        let (reader, sink) = connect(Principal(id: "reader", scopes: ["read"]))
        call(reader, id: 1, #"{"key":"fast"}"#)
        let fast = sink.take()
        #expect(fast["id"] == 1)
        #expect(fast["result"]?["content"]?.arrayValue?.first?["text"] == "fast at once for request 1")
        #expect(!reader.isInFlight(.number(1)))
        // Invalid arguments are refused at once, as the handler's path refuses them.
        call(reader, id: 2, #"{"key":7}"#)
        let invalid = sink.take()
        #expect(invalid["result"]?["isError"] == true)
        #expect(invalid["result"]?["structuredContent"]?["error"]?["reason"] == "invalid-arguments")
        // Declined: nothing is written yet; the handler answers from its task.
        call(reader, id: 3, #"{"key":"slow"}"#)
        var slow = sink.take()
        let deadline = ContinuousClock.now + .seconds(30)
        while slow == .null, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
            slow = sink.take()
        }
        #expect(slow["id"] == 3)
        #expect(slow["result"]?["content"]?.arrayValue?.first?["text"] == "in a task")
        #expect(handled.items.withLock { $0 } == ["slow"], "only the declined call reached the handler")
        // A principal without the tool's scope is refused at once, and nothing runs.
        let (stranger, strangerSink) = connect(Principal(id: "stranger", scopes: []))
        call(stranger, id: 4, #"{"key":"fast"}"#)
        let refused = strangerSink.take()
        #expect(refused["result"]?["structuredContent"]?["error"]?["reason"] == "insufficient-scope")
        #expect(handled.items.withLock { $0 } == ["slow"])
        reader.close()
        stranger.close()
    }

    @Test func handlersSeeTheirRequestAsTheTaskLocalCurrentRequest() async throws {
        let server = makeServer()
        server.register(
            Tool(name: "whoami") { _ in
                ToolResult(text: RequestContext.current.map { "\($0.requestID) \($0.method)" } ?? "none")
            })
        let client = MCPClient(channel: InProcessChannel(server: server), era: .modern())
        try await client.connect()
        let result = try await client.callTool("whoami")
        #expect(result["content"]?.arrayValue?.first?["text"]?.stringValue?.hasSuffix(" tools/call") == true)
        #expect(RequestContext.current == nil, "nothing leaks outside the handler")
    }

    @Test func closingTheConnectionFailsPendingRequests() async throws {
        let channel = InProcessChannel(server: makeServer())
        let client = MCPClient(channel: channel, era: .legacy())
        try await client.connect()
        let call = Task { try await client.callTool("wait", progressToken: "waiting") }
        // Closed only once the server is running the call (its first progress report arrived).
        var running = false
        for await message in client.notifications {
            if case .notification(let method, _) = message, method == "notifications/progress" {
                running = true
                break
            }
        }
        #expect(running, "the call reached the server")
        channel.close()
        await #expect(throws: MCPClient.Failure.disconnected) { try await call.value }
    }
}

/// `MCPServer.stop()` over a real stdio transport (pipes): open listen streams end with their
/// result, queued messages are written, and serving returns without end of input.
@Suite struct GracefulStopTests {
    /// A listen stream that opens once the server has stopped (its request was read as the stop
    /// came) is ended at once with its result, after its acknowledgment.
    @Test func aListenOpenedAfterTheStopIsEndedAtOnce() {
        let server = makeServer()
        let sink = CollectingSink()
        let connection = server.connect(sink: sink)
        server.stop()
        let meta =
            #"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#
        connection.receive(
            Array(
                #"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":\#(meta),"notifications":{"toolsListChanged":true}}}"#
                    .utf8))
        let first = sink.take()
        let second = sink.take()
        #expect(first["method"] == "notifications/subscriptions/acknowledged", "\(first)")
        #expect(second["id"] == 1 && second["result"]?["resultType"] == "complete", "\(second)")
    }

    @Test func stopEndsListenStreamsWithAResultAndReturns() async throws {
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0]
        #expect(pipe(&input) == 0 && pipe(&output) == 0)
        let server = makeServer()
        let transport = StdioTransport(inputDescriptor: input[0], outputDescriptor: output[1])
        let serving = Task { await transport.run(server: server) }
        let meta =
            #"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#
        let requests =
            #"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":\#(meta),"notifications":{"toolsListChanged":true}}}"#
            + "\n"
            + #"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":\#(meta)}}"# + "\n"
        _ = requests.utf8CString.withUnsafeBufferPointer { write(input[1], $0.baseAddress, $0.count - 1) }
        // Wait for the tools/list answer: both requests have then been taken in.
        var received = ""
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + .seconds(30)
        while !received.contains(#""id":2"#), ContinuousClock.now < deadline {
            let count = read(output[0], &chunk, chunk.count)
            // A signal for another test's child process may interrupt the read: read again (the
            // first version stopped the server then, before it had taken the requests in).
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            received += String(decoding: chunk[0..<count], as: UTF8.self)
        }
        #expect(received.contains(#""id":2"#), "the tools/list answer arrived: \(received)")
        server.stop()
        // Serving returns although standard input never ended (bounded: a broken stop fails, not hangs).
        let finished = EventLog()
        Task {
            await serving.value
            finished.items.withLock { $0.append("returned") }
        }
        let until = ContinuousClock.now + .seconds(30)
        while finished.items.withLock({ $0.isEmpty }), ContinuousClock.now < until {
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(!finished.items.withLock { $0.isEmpty }, "serveStdio returned after stop()")
        close(output[1])
        while true {
            let count = read(output[0], &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            received += String(decoding: chunk[0..<count], as: UTF8.self)
        }
        let messages = received.split(separator: "\n").compactMap { try? JSONValue(parsing: Array($0.utf8)) }
        #expect(
            messages.contains { $0["id"] == 1 && $0["result"] != nil },
            "the listen stream ended with its result: \(received)")
        #expect(server.isStopped)
        close(input[0])
        close(input[1])
        close(output[0])
    }
}

/// `StdioTransport.start(server:)`: a host starts serving before it has finished starting
/// itself, and owns the end later.
@Suite struct StartedStdioTests {
    @Test func aStartedServingAnswersBeforeAnyoneWaitsAndFinishesAtEndOfInput() async throws {
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0]
        #expect(pipe(&input) == 0 && pipe(&output) == 0)
        let server = makeServer()
        let serving = StdioTransport(inputDescriptor: input[0], outputDescriptor: output[1]).start(server: server)
        let initialize =
            #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
            + "\n"
        _ = initialize.utf8CString.withUnsafeBufferPointer { write(input[1], $0.baseAddress, $0.count - 1) }
        // Nobody awaits `finished()` yet: the answer still comes (bounded: a broken start fails, not hangs).
        var received = ""
        var chunk = [UInt8](repeating: 0, count: 65536)
        var readable = pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)
        while !received.contains("\n"), poll(&readable, 1, 30_000) > 0 {
            let count = read(output[0], &chunk, chunk.count)
            if count <= 0 { break }
            received += String(decoding: chunk[0..<count], as: UTF8.self)
        }
        let answer = try JSONValue(
            parsing: Array(received.split(separator: "\n").first.map(String.init)?.utf8 ?? "".utf8))
        #expect(answer["id"] == 1 && answer["result"]?["serverInfo"] != nil, "initialize answered: \(received)")
        // The input ends before anyone waits: `finished()` must still return (not wait for a
        // second end), and only then close the connection and flush the output.
        close(input[1])
        let ended = ContinuousClock.now + .seconds(30)
        while !serving.hasEnded, ContinuousClock.now < ended { try await Task.sleep(for: .milliseconds(1)) }
        #expect(serving.hasEnded, "the reader saw the end of input")
        #expect(!serving.isAwaited)
        let returned = EventLog()
        Task {
            await serving.finished()
            returned.items.withLock { $0.append("returned") }
        }
        // Bounded: a broken end fails here, it does not hang the suite.
        let until = ContinuousClock.now + .seconds(30)
        while returned.items.withLock({ $0.isEmpty }), ContinuousClock.now < until {
            try await Task.sleep(for: .milliseconds(1))
        }
        let outcome = !returned.items.withLock { $0.isEmpty }
        #expect(outcome, "finished() returned after the input had ended")
        close(input[0])
        close(output[0])
        close(output[1])
    }

    @Test func finishedWaitsForTheEndOfInputWhenAwaitedFirst() async throws {
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0]
        #expect(pipe(&input) == 0 && pipe(&output) == 0)
        let server = makeServer()
        let serving = StdioTransport(inputDescriptor: input[0], outputDescriptor: output[1]).start(server: server)
        let returned = EventLog()
        let finished = Task {
            await serving.finished()
            returned.items.withLock { $0.append("returned") }
        }
        let awaited = ContinuousClock.now + .seconds(30)
        while !serving.isAwaited, ContinuousClock.now < awaited { try await Task.sleep(for: .milliseconds(1)) }
        #expect(serving.isAwaited && !serving.hasEnded, "finished() waits while the input is open")
        #expect(returned.items.withLock { $0.isEmpty })
        close(input[1])
        await finished.value
        #expect(returned.items.withLock { $0 } == ["returned"])
        close(input[0])
        close(output[0])
        close(output[1])
    }
}
