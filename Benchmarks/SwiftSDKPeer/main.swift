// The Swift peer in the benchmark: the same tool, resource and prompt names built on the
// official MCP Swift SDK (modelcontextprotocol/swift-sdk 0.12.1, `Server` over
// `StdioTransport`), with Twilio stubbed: what a Swift user would otherwise write. Only for
// Benchmarks/run (AgentPaymentsBenchmark --swift-peer); never part of the tests. Its results
// are JSON text, as the Python peer's, so the harness reads both the same way.
import Foundation
import MCP

/// The stubbed payment sessions, by payment SID.
actor Sessions {
    private var sessions: [String: [String: Value]] = [:]
    private var counter = 0

    func start(callSID: String) -> [String: Value] {
        counter += 1
        let hex = String(counter, radix: 16)
        let sid = "PK" + String(repeating: "0", count: 32 - hex.count) + hex
        let session: [String: Value] = [
            "callSid": .string(callSID), "paymentSid": .string(sid), "phase": "active", "version": 1, "items": [:],
            "nextStep": [
                "tool": "captureCardNumber", "instruction": "capture the card number", "waitForCaller": false,
            ],
        ]
        sessions[sid] = session
        return session
    }

    func capture(_ sid: String, item: String, next: String) -> [String: Value]? {
        guard var session = sessions[sid] else { return nil }
        var items = session["items"]?.objectValue ?? [:]
        items[item] = ["state": "captured", "masked": "xxxx"]
        session["items"] = .object(items)
        session["version"] = .int((session["version"]?.intValue ?? 0) + 1)
        session["nextStep"] = ["tool": .string(next), "instruction": "next", "waitForCaller": false]
        sessions[sid] = session
        return session
    }

    func complete(_ sid: String) -> [String: Value]? {
        guard var session = sessions[sid] else { return nil }
        session["phase"] = "completed"
        session["result"] = "success"
        session["paymentToken"] = "tok_peer"
        session["version"] = .int((session["version"]?.intValue ?? 0) + 1)
        session["nextStep"] = ["instruction": "done", "waitForCaller": false]
        sessions[sid] = session
        return session
    }

    func status(_ sid: String) -> [String: Value]? { sessions[sid] }
}

let sessions = Sessions()

func schema(_ properties: [String: Value], required: [String]) -> Value {
    ["type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) })]
}

let callSid: Value = ["type": "string"]
let paymentSid: Value = ["type": "string"]
let captureSchema = schema(
    ["callSid": callSid, "paymentSid": paymentSid, "captureType": ["type": "string"]],
    required: ["callSid", "paymentSid"])
let tools = [
    Tool(
        name: "startPaymentCapture", description: "Start a payment session (Twilio stubbed)",
        inputSchema: schema(
            [
                "callSid": callSid, "chargeAmount": ["type": "number"], "currency": ["type": "string"],
                "postalCode": ["type": "boolean"], "securityCode": ["type": "boolean"],
            ], required: ["callSid"])),
    Tool(name: "captureCardNumber", description: "Capture the card number", inputSchema: captureSchema),
    Tool(name: "captureSecurityCode", description: "Capture the security code", inputSchema: captureSchema),
    Tool(name: "captureExpirationDate", description: "Capture the expiration date", inputSchema: captureSchema),
    Tool(
        name: "completePaymentCapture", description: "Complete the payment",
        inputSchema: schema(["callSid": callSid, "paymentSid": paymentSid], required: ["callSid", "paymentSid"])),
    Tool(
        name: "getPaymentStatus", description: "The payment's status",
        inputSchema: schema(
            [
                "paymentSid": paymentSid, "callSid": callSid, "waitSeconds": ["type": "number"],
                "afterVersion": ["type": "integer"],
            ], required: ["paymentSid"])),
]

/// A text content block, as SDK 0.12.1 spells it.
func text(_ value: String) -> Tool.Content { .text(text: value, annotations: nil, _meta: nil) }

/// A tool result: the session as JSON text, or an error.
func answer(_ session: [String: Value]?) throws -> CallTool.Result {
    guard let session else { return .init(content: [text("unknown payment session")], isError: true) }
    let text = String(decoding: try JSONEncoder().encode(Value.object(session)), as: UTF8.self)
    return .init(content: [.text(text: text, annotations: nil, _meta: nil)], isError: false)
}

let server = Server(
    name: "agent-payments-swift-sdk-peer", version: "1.0.0",
    capabilities: .init(prompts: .init(), resources: .init(), tools: .init()))
await server.withMethodHandler(ListTools.self) { _ in .init(tools: tools) }
await server.withMethodHandler(CallTool.self) { params in
    let arguments = params.arguments ?? [:]
    let sid = arguments["paymentSid"]?.stringValue ?? ""
    switch params.name {
    case "startPaymentCapture":
        return try answer(await sessions.start(callSID: arguments["callSid"]?.stringValue ?? ""))
    case "captureCardNumber":
        return try answer(await sessions.capture(sid, item: "payment-card-number", next: "captureSecurityCode"))
    case "captureSecurityCode":
        return try answer(await sessions.capture(sid, item: "security-code", next: "captureExpirationDate"))
    case "captureExpirationDate":
        return try answer(await sessions.capture(sid, item: "expiration-date", next: "completePaymentCapture"))
    case "completePaymentCapture": return try answer(await sessions.complete(sid))
    case "getPaymentStatus": return try answer(await sessions.status(sid))
    default: return .init(content: [text("unknown tool \(params.name)")], isError: true)
    }
}
await server.withMethodHandler(ListResources.self) { _ in .init(resources: [], nextCursor: nil) }
await server.withMethodHandler(ReadResource.self) { params in
    // payment://{callSid}/{paymentSid}/status
    let sid = params.uri.split(separator: "/").dropLast().last.map(String.init) ?? ""
    guard let session = await sessions.status(sid) else { throw MCPError.invalidParams("unknown \(params.uri)") }
    let text = String(decoding: try JSONEncoder().encode(Value.object(session)), as: UTF8.self)
    return .init(contents: [.text(text, uri: params.uri, mimeType: "application/json")])
}
await server.withMethodHandler(ListPrompts.self) { _ in
    .init(prompts: [Prompt(name: "StartCapture", description: "Start the payment", arguments: [])], nextCursor: nil)
}
await server.withMethodHandler(GetPrompt.self) { params in
    .init(description: "Start the payment", messages: [.user("Start the payment on the caller's call.")])
}
try await server.start(transport: StdioTransport())
await server.waitUntilCompleted()
