import Tracing

/// A span for each request a server runs in a task of its own or answers through a tool's
/// immediate answer (tool calls, resource reads, prompts), named and described as OpenTelemetry's semantic conventions for MCP say
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
    /// Starts the request's span (ended by ``run(in:_:)``, or by ``mark(_:on:)`` and `end()` for
    /// a request answered at once).
    static func start(method: String, params: JSONValue, context: RequestContext) -> any Span {
        // The client names the tool: at most 64 characters of it reach a span's name.
        let tool = method == "tools/call" ? params["name"]?.stringValue.map { String($0.prefix(64)) } : nil
        let span = startSpan(
            tool.map { "\(method) \($0)" } ?? method, context: parent(params: params, context: context), ofKind: .server
        )
        // Without a tracer (the default) the span records nothing: its attributes are not built.
        guard span.isRecording else { return span }
        span.attributes["mcp.method.name"] = method
        if let tool { span.attributes["gen_ai.tool.name"] = tool }
        span.attributes["jsonrpc.request.id"] = context.requestID.description
        span.attributes["mcp.protocol.version"] = context.era.version
        span.attributes["network.transport"] = context.clientAddress == nil ? "pipe" : "tcp"
        return span
    }

    /// Runs `body` with `span` as the current context (what it does becomes its children), then
    /// ends it, marked with the outcome.
    static func run(in span: any Span, _ body: () async throws -> JSONValue) async throws -> JSONValue {
        defer { span.end() }
        do {
            let result = try await ServiceContext.$current.withValue(span.context) { try await body() }
            mark(.success(result), on: span)
            return result
        } catch {
            span.recordError(error)
            throw error
        }
    }

    /// Runs `body` at once with `span` as the current context; the caller ends the span.
    static func now<T>(in span: any Span, _ body: () -> T) -> T {
        ServiceContext.$current.withValue(span.context, operation: body)
    }

    /// Marks `span` with a request's outcome: a tool result with `isError` or a JSON-RPC error.
    static func mark(_ outcome: Result<JSONValue, JSONRPCError>, on span: any Span) {
        switch outcome {
        case .success(let result) where result["isError"] == .bool(true):
            span.attributes["error.type"] = "tool_error"
            span.setStatus(SpanStatus(code: .error))
        case .success:
            break
        case .failure(let error):
            span.recordError(error)
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
