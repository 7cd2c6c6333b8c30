import Tracing

/// A span for each request a server runs in a task of its own (tool calls, resource reads,
/// prompts), named and described as OpenTelemetry's semantic conventions for MCP say
/// (`tools/call startPaymentCapture`, kind server, `mcp.method.name`, `gen_ai.tool.name`,
/// `jsonrpc.request.id`, `mcp.protocol.version`, `network.transport`).
///
/// It continues the caller's trace: W3C `traceparent`, `tracestate` and `baggage` from the
/// request's `_meta` (MCP 2026-07-28 reserves those keys), else from the HTTP request's headers
/// (``RequestContext/transportHeaders``). What the tool does under it — store, Twilio,
/// notifications — are its children through the task-local `ServiceContext`. The tracer is
/// whatever the host bootstrapped (`InstrumentationSystem`); with none, this costs a no-op span.
/// Arguments are never recorded: a span says which tool, not with what.
enum RequestTracing {
    /// Runs `body` in the request's span.
    static func run(
        method: String, params: JSONValue, context: RequestContext, _ body: () async throws -> JSONValue
    ) async throws -> JSONValue {
        // The client names the tool: at most 64 characters of it reach a span's name.
        let tool = method == "tools/call" ? params["name"]?.stringValue.map { String($0.prefix(64)) } : nil
        return try await withSpan(
            tool.map { "\(method) \($0)" } ?? method, context: parent(params: params, context: context), ofKind: .server
        ) { span in
            span.attributes["mcp.method.name"] = method
            if let tool { span.attributes["gen_ai.tool.name"] = tool }
            span.attributes["jsonrpc.request.id"] = context.requestID.description
            span.attributes["mcp.protocol.version"] = context.era.version
            span.attributes["network.transport"] = context.clientAddress == nil ? "pipe" : "tcp"
            let result = try await body()
            if result["isError"] == .bool(true) {
                span.attributes["error.type"] = "tool_error"
                span.setStatus(SpanStatus(code: .error))
            }
            return result
        }
    }

    /// The caller's trace context: `_meta`'s keys when it names a `traceparent`, else the
    /// transport's headers; the top level when neither does.
    static func parent(params: JSONValue, context: RequestContext) -> ServiceContext {
        var carrier: [String: String] = [:]
        if let meta = params["_meta"]?.objectValue, meta["traceparent"]?.stringValue != nil {
            for key in RequestContext.traceContextKeys { carrier[key] = meta[key]?.stringValue }
        } else {
            for key in RequestContext.traceContextKeys { carrier[key] = context.transportHeaders[key] }
        }
        var parent = ServiceContext.current ?? .topLevel
        if !carrier.isEmpty { InstrumentationSystem.instrument.extract(carrier, into: &parent, using: KeyedCarrier()) }
        return parent
    }

    /// Reads a W3C key from a dictionary of lowercased names.
    struct KeyedCarrier: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key.lowercased()] }
    }
}
