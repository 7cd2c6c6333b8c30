// A server built only from MCPCore, exercising every feature the engine offers, for the
// interop tests (driven by the official Python SDK) and the stdio benchmark.
//
// Usage: mcpcore-fixture-server [--page-size N]
import MCPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func usageError(_ message: String) -> Never {
    var text = "mcpcore-fixture-server: \(message)\nusage: mcpcore-fixture-server [--page-size N]\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(64)
}

var pageSize = 100
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--page-size":
        guard let value = arguments.popFirst().flatMap(Int.init), value > 0 else {
            usageError("--page-size needs a positive integer")
        }
        pageSize = value
    default:
        usageError("unknown argument \(argument)")
    }
}

let server = MCPServer(
    info: Implementation(name: "mcpcore-fixture", title: "MCPCore fixture server", version: "1.0.0"),
    instructions: "A test server for MCPCore: tools echo, add, slow, log, touch, fail, bad_output, add_tool.",
    options: MCPServer.Options(pageSize: pageSize)
)

server.register(
    Tool(
        name: "echo", title: "Echo", description: "Returns its text unchanged.",
        inputSchema: [
            "type": "object", "properties": ["text": ["type": "string", "minLength": 1]], "required": ["text"],
            "additionalProperties": false,
        ],
        annotations: ToolAnnotations(readOnlyHint: true, idempotentHint: true, openWorldHint: false)
    ) { call in
        ToolResult(text: call.arguments["text"]!.stringValue!)
    })

server.register(
    Tool(
        name: "add", title: "Add", description: "Adds two numbers.",
        inputSchema: [
            "type": "object", "properties": ["a": ["type": "number"], "b": ["type": "number"]], "required": ["a", "b"],
        ],
        outputSchema: ["type": "object", "properties": ["sum": ["type": "number"]], "required": ["sum"]],
        annotations: ToolAnnotations(readOnlyHint: true)
    ) { call in
        let sum = call.arguments["a"]!.doubleValue! + call.arguments["b"]!.doubleValue!
        let value: JSONValue = sum.rounded() == sum && sum.magnitude < 1e15 ? .integer(Int64(sum)) : .double(sum)
        return ToolResult(structured: ["sum": value])
    })

server.register(
    Tool(
        name: "slow", description: "Works for `seconds`, reporting progress `steps` times; cancellable.",
        inputSchema: [
            "type": "object",
            "properties": [
                "seconds": ["type": "number", "minimum": 0, "maximum": 60],
                "steps": ["type": "integer", "minimum": 1, "maximum": 1000],
            ], "required": ["seconds"],
        ]
    ) { call in
        let seconds = call.arguments["seconds"]!.doubleValue!
        let steps = call.arguments["steps"]?.intValue ?? 4
        for step in 1...steps {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000) / steps))
            call.context.reportProgress(Double(step), total: Double(steps), message: "step \(step) of \(steps)")
            call.context.log(.debug, ["step": .integer(Int64(step))], logger: "slow")
        }
        return ToolResult(text: "done after \(steps) steps")
    })

server.register(
    Tool(
        name: "log", description: "Emits one log message at the given level.",
        inputSchema: [
            "type": "object",
            "properties": [
                "level": ["type": "string", "enum": .array(LogLevel.allCases.map { .string($0.rawValue) })],
                "message": ["type": "string"],
            ], "required": ["level", "message"],
        ]
    ) { call in
        let level = LogLevel(rawValue: call.arguments["level"]!.stringValue!)!
        call.context.log(level, .string(call.arguments["message"]!.stringValue!), logger: "fixture")
        return ToolResult(text: "logged")
    })

server.register(
    Tool(
        name: "touch", description: "Announces that a resource changed.",
        inputSchema: ["type": "object", "properties": ["uri": ["type": "string"]], "required": ["uri"]]
    ) { call in
        server.notifyResourceUpdated(uri: call.arguments["uri"]!.stringValue!)
        return ToolResult(text: "touched")
    })

struct FixtureFailure: Error, CustomStringConvertible {
    var description: String { "the fixture failed on purpose" }
}

server.register(
    Tool(
        name: "fail", description: "Fails in the requested way.",
        inputSchema: [
            "type": "object", "properties": ["mode": ["type": "string", "enum": ["tool", "throw", "protocol"]]],
            "required": ["mode"],
        ],
        annotations: ToolAnnotations(destructiveHint: false)
    ) { call in
        switch call.arguments["mode"]!.stringValue! {
        case "tool": throw ToolError("the tool failed on purpose", structuredContent: ["reason": "requested"])
        case "throw": throw FixtureFailure()
        default: throw JSONRPCError(code: -31999, message: "a protocol error on purpose")
        }
    })

server.register(
    Tool(
        name: "bad_output", description: "Returns output that breaks its own outputSchema.",
        outputSchema: ["type": "object", "properties": ["count": ["type": "integer"]], "required": ["count"]]
    ) { _ in
        ToolResult(structured: ["count": "not a number"])
    })

server.register(
    Tool(
        name: "add_tool", description: "Registers a tool named `name` and announces the list change.",
        inputSchema: [
            "type": "object", "properties": ["name": ["type": "string", "pattern": "^[a-z_]+$"]], "required": ["name"],
        ]
    ) { call in
        let name = call.arguments["name"]!.stringValue!
        server.register(
            Tool(name: name, description: "Added at run time.") { _ in ToolResult(text: "hello from \(name)") })
        server.notifyToolsListChanged()
        return ToolResult(text: "added \(name)")
    })

server.register(
    Resource(
        ResourceDescriptor(uri: "demo://readme", name: "readme", title: "Read me", mimeType: "text/plain")
    ) { _ in
        [ResourceContents(uri: "demo://readme", mimeType: "text/plain", text: "MCPCore fixture")]
    })

server.register(
    ResourceTemplate(
        try! URITemplate("payment://{callSid}/{paymentSid}/status"),
        name: "payment-status", title: "Payment status", description: "Status of one payment session.",
        mimeType: "application/json",
        list: { _ in
            [ResourceDescriptor(uri: "payment://CA111/PK222/status", name: "CA111/PK222", mimeType: "application/json")]
        }
    ) { variables, uri, _ in
        guard let callSid = variables["callSid"], callSid.hasPrefix("CA"), let paymentSid = variables["paymentSid"]
        else { return nil }
        let body: JSONValue = ["callSid": .string(callSid), "paymentSid": .string(paymentSid), "status": "active"]
        return [ResourceContents(uri: uri, mimeType: "application/json", text: body.serialized())]
    })

server.register(
    Prompt(
        name: "greet", title: "Greet", description: "Greets someone.",
        arguments: [
            PromptArgument(name: "name", description: "Who to greet", required: true),
            PromptArgument(name: "style", description: "formal, friendly or pirate"),
        ]
    ) { arguments, _ in
        let style = arguments["style"] ?? "friendly"
        return PromptResult(
            description: "A \(style) greeting",
            messages: [PromptMessage(role: .user, text: "Greet \(arguments["name"]!) in a \(style) way.")])
    })

server.setCompletionProvider { request, _ in
    let candidates: [String]
    switch (request.reference, request.argumentName) {
    case (.prompt("greet"), "style"): candidates = ["formal", "friendly", "pirate"]
    case (.resourceTemplate, "callSid"): candidates = ["CA111", "CA222", "CB333"]
    case (.resourceTemplate, "paymentSid"): candidates = request.contextArguments["callSid"] == "CA111" ? ["PK222"] : []
    default: candidates = []
    }
    return Completion(values: candidates.filter { $0.hasPrefix(request.value) })
}

await server.serveStdio()
