import Hummingbird
public import HTTPTypes
import Logging
import MCPCore
import NIOCore

/// The endpoint's three methods: POST (both eras), GET and DELETE (legacy sessions).
extension MCPHTTPTransport {
    // MARK: POST

    func handlePost(_ request: Request, channel: (any Channel)?) async -> Response {
        let caller: Caller
        switch await admit(request, channel: channel) {
        case .refused(let response): return response
        case .admitted(let admitted): caller = admitted
        }
        guard let contentType = request.headers[.contentType], Self.isJSON(contentType) else {
            return Self.errorResponse(
                .unsupportedMediaType,
                .invalidRequest("the body must be one JSON-RPC message with Content-Type: application/json"))
        }
        let limit = configuration.maximumBodyBytes
        // Made only when needed: building it for every request was 2 % of a ping's CPU.
        func tooLarge() -> Response {
            Self.errorResponse(.contentTooLarge, .invalidRequest("the body is larger than the \(limit)-byte limit"))
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { return tooLarge() }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            return tooLarge()
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: body.readableBytesView)
        } catch {
            return Self.errorResponse(.badRequest, .parseError(error.description))
        }
        let message: JSONRPCMessage
        switch JSONRPCMessage.decode(value) {
        case .failure(let failure): return Self.errorResponse(.badRequest, failure.error, id: failure.id)
        case .success(let decoded): message = decoded
        }
        if let refusal = await toolCallRefusal(message, caller: caller) { return refusal }

        let versionHeader = request.headers[.mcpProtocolVersion]
        if let versionHeader, ProtocolVersion.legacy.contains(versionHeader) {
            return await handleLegacy(
                request, message: message, versionHeader: versionHeader, caller: caller, channel: channel)
        }
        if versionHeader != nil || message.params?["_meta"]?[MetaKey.protocolVersion] != nil {
            return await handleModern(
                request, message: message, versionHeader: versionHeader, caller: caller, channel: channel)
        }
        return await handleLegacy(request, message: message, versionHeader: nil, caller: caller, channel: channel)
    }

    /// Whether a `Content-Type` value names JSON (`application/json`, any case, parameters
    /// allowed), read as bytes: lowercasing a copy of it was a visible part of a ping's CPU.
    static func isJSON(_ contentType: String) -> Bool {
        let expected = "application/json".utf8
        let utf8 = contentType.utf8
        guard utf8.count >= expected.count else { return false }
        // An ASCII letter's capital differs from it by 0x20 alone.
        return zip(utf8, expected).allSatisfy { byte, wanted in
            byte == wanted || (wanted >= UInt8(ascii: "a") && wanted <= UInt8(ascii: "z") && byte | 0x20 == wanted)
        }
    }

    /// What refuses a `tools/call` before it reaches the engine: a tool whose scopes the token
    /// lacks (`403 insufficient_scope`, the step-up of the MCP authorization spec), or a caller
    /// over its tool-call rate (`429` with `Retry-After`).
    func toolCallRefusal(_ message: JSONRPCMessage, caller: Caller) async -> Response? {
        guard case .request(let id, "tools/call", let params) = message else { return nil }
        if configuration.authenticator != nil, let name = params?["name"]?.stringValue,
            let required = server.requiredScopes(forTool: name)
        {
            let missing = caller.principal.missing(required)
            if !missing.isEmpty {
                logger.notice(
                    "tool call refused: insufficient scope", metadata: ["client": "\(caller.key)", "tool": "\(name)"])
                // Told to the host within the caller's tool-call rate, which the refusal spends.
                if toolCallsByPrincipal.take(caller.key) == nil {
                    await configuration.onRefusedAuthentication?(
                        .init(
                            address: caller.address, principal: caller.principal.id,
                            reason: "insufficient scope for \(name): \(missing.joined(separator: " ")) required"))
                }
                return insufficientScope(missing, id: id)
            }
        }
        for (limiter, key, what) in [
            (toolCallsByPrincipal, caller.key, "this client"), (toolCallsByAddress, caller.address, "this address"),
        ] {
            if let retry = limiter.take(key) {
                logger.notice(
                    "tool call refused: rate limit",
                    metadata: ["client": "\(caller.key)", "client.address": "\(caller.address)"])
                return Self.errorResponse(
                    .tooManyRequests,
                    .invalidRequest(
                        "\(what) has made more than \(limiter.perMinute) tool calls a minute; wait \(retry) s and call again"
                    ),
                    id: id, headers: [.retryAfter: "\(retry)"])
            }
        }
        return nil
    }

    // MARK: Modern

    func handleModern(
        _ request: Request, message: JSONRPCMessage, versionHeader: String?, caller: Caller,
        channel: (any Channel)?
    ) async -> Response {
        let id = message.requestID
        guard let versionHeader else {
            return Self.errorResponse(
                .badRequest, HeaderRules.error("the MCP-Protocol-Version header is required on 2026-07-28 requests"),
                id: id)
        }
        if let mismatch = HeaderRules.mismatch(
            protocolVersion: versionHeader, method: request.headers[.mcpMethod],
            name: request.headers[.mcpName], message: message)
        {
            return Self.errorResponse(.badRequest, mismatch, id: id)
        }
        guard ProtocolVersion.modern.contains(versionHeader) else {
            return Self.errorResponse(
                .badRequest, .unsupportedProtocolVersion(requested: versionHeader, supported: ProtocolVersion.all),
                id: id)
        }
        switch message {
        case .notification:
            // 2026-07-28 defines no client notifications over HTTP (closing a stream cancels).
            return Response(status: .accepted)
        case .result, .error:
            return Self.errorResponse(.badRequest, .invalidRequest("a 2026-07-28 client sends no JSON-RPC responses"))
        case .request(_, "initialize", let params):
            // A fresh engine connection would take it as a legacy handshake; a modern POST has none.
            return Self.errorResponse(
                .badRequest,
                .unsupportedProtocolVersion(
                    requested: params?["protocolVersion"]?.stringValue ?? versionHeader,
                    supported: ProtocolVersion.modern.reversed(),
                    detail:
                        "2026-07-28 has no initialize handshake; send initialize without MCP-Protocol-Version 2026-07-28 to open a legacy session"
                ),
                id: message.requestID)
        case .request(_, let method, _):
            let listens = method == "subscriptions/listen"
            if listens, !acquireStream(for: caller.key) {
                return tooManyStreams()
            }
            let queue = OutboundQueue(limit: configuration.streamBuffer)
            let connection = server.connect(sink: ModernSink(queue: queue), principal: caller.principal)
            connection.receive(message: message, transportHeaders: forwarded(request), clientAddress: caller.address)
            return await respond(
                queue: queue, modern: true, channel: channel, streamHolder: listens ? caller.key : nil,
                onEnd: { _ in connection.close() })
        }
    }

    /// The configured headers of `request` that it carries, for the engine.
    func forwarded(_ request: Request) -> [String: String] {
        var headers: [String: String] = [:]
        // The caller's W3C trace context always: the engine continues its trace (RequestTracing).
        // One pass over the request's fields (a lookup per name scanned them all each time);
        // repeated fields are joined as HTTPFields joins them.
        for field in request.headers {
            guard let key = forwardedNames[field.name.canonicalName] else { continue }
            headers[key] = headers[key].map { $0 + ", " + field.value } ?? field.value
        }
        return headers
    }

    func tooManyStreams() -> Response {
        Self.errorResponse(
            .tooManyRequests,
            .invalidRequest(
                "this client already holds \(configuration.maximumStreamsPerClient) open event streams (AGENT_PAYMENTS_HTTP_MAX_STREAMS); close one first"
            ),
            headers: [.retryAfter: "1"])
    }

    // MARK: Legacy

    func handleLegacy(
        _ request: Request, message: JSONRPCMessage, versionHeader: String?, caller: Caller,
        channel: (any Channel)?
    ) async -> Response {
        guard let sessionID = request.headers[.mcpSessionID] else {
            if case .request(_, "initialize", _) = message {
                return await initialize(message, caller: caller, channel: channel)
            }
            return Self.errorResponse(
                .badRequest,
                .invalidRequest(
                    "the Mcp-Session-Id header is required: open a session with initialize (protocol 2025-11-25 and earlier), "
                        + "or send 2026-07-28 requests with MCP-Protocol-Version and _meta"), id: message.requestID)
        }
        guard let session = session(sessionID, principal: caller.key) else {
            return sessionNotFound(id: message.requestID)
        }
        if let versionHeader, let negotiated = session.version, versionHeader != negotiated {
            return Self.errorResponse(
                .badRequest,
                .invalidRequest(
                    "MCP-Protocol-Version \(versionHeader) is not this session's negotiated revision \(negotiated)"),
                id: message.requestID)
        }
        session.touch()
        guard case .request(let id, _, _) = message else {
            session.connection.receive(message: message)
            return Response(status: .accepted)
        }
        guard let queue = session.register(id) else {
            return Self.errorResponse(
                .badRequest, .invalidRequest("request id \(id) is already in use by a request in progress"), id: id)
        }
        session.connection.receive(
            message: message, transportHeaders: forwarded(request), clientAddress: caller.address)
        return await respond(queue: queue, modern: false, channel: channel, streamHolder: nil) { clientGone in
            if clientGone { session.cancel(id) }
            session.touch()
        }
    }

    func initialize(_ message: JSONRPCMessage, caller: Caller, channel: (any Channel)?) async -> Response {
        guard let id = message.requestID else { return sessionNotFound(id: nil) }
        let principal = caller.key
        let session = LegacySession(
            id: LegacySession.newID(), principal: principal,
            backlogLimit: configuration.sessionBacklog, bufferLimit: configuration.streamBuffer)
        enum Admitted { case yes, full, clientFull }
        let admitted = sessions.withLock { sessions -> Admitted in
            guard sessions.count < configuration.maximumSessions else { return .full }
            // One client cannot take every session: its own are counted too.
            guard
                sessions.values.lazy.filter({ $0.principal == principal }).count
                    < configuration.maximumSessionsPerClient
            else { return .clientFull }
            sessions[session.id] = session
            return .yes
        }
        if admitted == .clientFull {
            expireIdleSessions()
            return Self.errorResponse(
                .tooManyRequests,
                .invalidRequest(
                    "this client holds its limit of \(configuration.maximumSessionsPerClient) sessions (AGENT_PAYMENTS_HTTP_MAX_SESSIONS_PER_CLIENT); end one (DELETE) or let one expire"
                ),
                id: id, headers: [.retryAfter: "5"])
        }
        guard admitted == .yes else {
            expireIdleSessions()
            return Self.errorResponse(
                .serviceUnavailable,
                .invalidRequest(
                    "the server holds its limit of \(configuration.maximumSessions) sessions (AGENT_PAYMENTS_HTTP_MAX_SESSIONS); try again later"
                ),
                id: id, headers: [.retryAfter: "5"])
        }
        session.attach(server.connect(sink: session, principal: caller.principal))
        guard let queue = session.register(id) else { return sessionNotFound(id: id) }
        session.connection.receive(message: message)
        var response = await respond(queue: queue, modern: false, channel: channel, streamHolder: nil) { _ in }
        if session.version != nil {
            response.headers[.mcpSessionID] = session.id
            logger.debug(
                "legacy session opened",
                metadata: ["session.version": "\(session.version ?? "-")", "client": "\(principal)"])
        } else {
            // initialize was refused: no session.
            sessions.withLock { _ = $0.removeValue(forKey: session.id) }
            session.close()
        }
        return response
    }

    /// The session `id` of `principal`, unless it is unknown, expired or another client's.
    func session(_ id: String, principal: String) -> LegacySession? {
        let cutoff = ContinuousClock.now - configuration.sessionIdleTimeout
        let (found, expired) = sessions.withLock { sessions -> (LegacySession?, LegacySession?) in
            guard let session = sessions[id], session.principal == principal else { return (nil, nil) }
            if session.isIdle(since: cutoff) {
                sessions.removeValue(forKey: id)
                return (nil, session)
            }
            return (session, nil)
        }
        expired?.close()
        return found
    }

    func sessionNotFound(id: MCPCore.RequestID?) -> Response {
        Self.errorResponse(
            .notFound,
            .invalidRequest("session not found: it expired, was ended, or never existed; send initialize again"), id: id
        )
    }

    // MARK: GET and DELETE

    func handleGet(_ request: Request, channel: (any Channel)?) async -> Response {
        // 2026-07-28 has no GET stream (subscriptions/listen replaces it).
        let session: LegacySession, principal: String
        switch await admitToSession(
            request, channel: channel,
            withoutSession:
                "GET opens a legacy session's stream and needs its Mcp-Session-Id; 2026-07-28 clients use subscriptions/listen"
        ) {
        case .refused(let response): return response
        case .admitted(let admitted, let holder): (session, principal) = (admitted, holder)
        }
        let accept = request.headers[.accept]?.lowercased() ?? "*/*"
        guard accept.contains("text/event-stream") || accept.contains("*/*") else {
            return Self.errorResponse(
                .notAcceptable, .invalidRequest("the session stream is text/event-stream; say so in Accept"))
        }
        guard acquireStream(for: principal) else { return tooManyStreams() }
        guard let queue = session.openStream() else {
            releaseStream(for: principal)
            return Self.errorResponse(.conflict, .invalidRequest("this session already has its stream open"))
        }
        return eventStream(queue: queue, first: nil, channel: channel, streamHolder: principal) { _ in
            session.streamClosed(queue)
        }
    }

    func handleDelete(_ request: Request, channel: (any Channel)?) async -> Response {
        let session: LegacySession
        switch await admitToSession(
            request, channel: channel,
            withoutSession: "DELETE ends a legacy session and needs its Mcp-Session-Id; 2026-07-28 has no sessions")
        {
        case .refused(let response): return response
        case .admitted(let admitted, _): session = admitted
        }
        sessions.withLock { _ = $0.removeValue(forKey: session.id) }
        session.close()
        return Response(status: .noContent)
    }

    enum SessionAdmission {
        case admitted(LegacySession, principal: String)
        case refused(Response)
    }

    /// The Origin and bearer checks, then the caller's session named by `Mcp-Session-Id`: `405`
    /// (saying `withoutSession`) without the header, `404` for a session that is not the caller's.
    func admitToSession(_ request: Request, channel: (any Channel)?, withoutSession: String) async -> SessionAdmission {
        let principal: String
        switch await admit(request, channel: channel) {
        case .refused(let response): return .refused(response)
        case .admitted(let admitted): principal = admitted.key
        }
        guard let sessionID = request.headers[.mcpSessionID] else {
            return .refused(Self.methodNotAllowed(withoutSession, allow: "POST"))
        }
        guard let session = session(sessionID, principal: principal) else { return .refused(sessionNotFound(id: nil)) }
        return .admitted(session, principal: principal)
    }

    // MARK: Responses

    /// Waits for the request's first message: the response alone becomes a JSON body; anything
    /// before it turns the response into an event stream. `onEnd` runs once, with whether the
    /// client left before the response was delivered.
    func respond(
        queue: OutboundQueue, modern: Bool, channel: (any Channel)?, streamHolder: String?,
        onEnd: @escaping @Sendable (_ clientGone: Bool) -> Void
    ) async -> Response {
        let token = channel.map { channel in watch.observe(channel) { queue.end(.clientGone) } }
        let first = await queue.next()
        if let channel, let token { watch.stopObserving(channel, token: token) }
        guard case .message(let line, let final)? = first else {
            onEnd(true)
            if let streamHolder { releaseStream(for: streamHolder) }
            return Self.errorResponse(.serviceUnavailable, .internalError("the request ended without a response"))
        }
        if final {
            onEnd(false)
            if let streamHolder { releaseStream(for: streamHolder) }
            return Response(
                status: Self.status(ofResponse: line, modern: modern), headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: line)))
        }
        return eventStream(queue: queue, first: line, channel: channel, streamHolder: streamHolder, onEnd: onEnd)
    }

    /// An event stream of the queue's messages (after `first`), with keep-alive comments, until
    /// the final message, the queue's end, or the client leaving.
    func eventStream(
        queue: OutboundQueue, first: [UInt8]?, channel: (any Channel)?, streamHolder: String?,
        onEnd: @escaping @Sendable (_ clientGone: Bool) -> Void
    ) -> Response {
        let interval = configuration.keepAliveInterval
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .accelBuffering: "no"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { [self] writer in
                let token = channel.map { channel in watch.observe(channel) { queue.end(.clientGone) } }
                var answered = false, writeFailed = false
                // Keep-alive comments come from a child task, gone when the stream ends.
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while (try? await Task.sleep(for: interval)) != nil { queue.push(.keepAlive) }
                    }
                    defer { group.cancelAll() }
                    do {
                        // The response head goes out with the first write: a stream with nothing to
                        // say yet opens with a comment, so the client knows it is open.
                        try await writer.write(first.map(Self.event) ?? ByteBuffer(string: ": stream open\n\n"))
                        loop: while let item = await queue.next() {
                            switch item {
                            case .keepAlive:
                                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                            case .message(let line, let final):
                                try await writer.write(Self.event(line))
                                if final {
                                    answered = true
                                    break loop
                                }
                            }
                        }
                    } catch {
                        writeFailed = true
                    }
                }
                if let channel, let token { watch.stopObserving(channel, token: token) }
                let clientGone = writeFailed || (!answered && queue.ending == .clientGone)
                logger.debug(
                    "event stream ended",
                    metadata: [
                        "stream.answered": "\(answered)", "stream.clientGone": "\(clientGone)",
                        "stream.writeFailed": "\(writeFailed)",
                    ])
                // The owner hears of the end before the slot is free, so a free slot means the
                // session already knows its stream is closed.
                onEnd(clientGone && !answered)
                if let streamHolder { releaseStream(for: streamHolder) }
                if queue.dropped > 0 {
                    logger.notice(
                        "a slow client's stream dropped notifications",
                        metadata: ["notifications.dropped": "\(queue.dropped)"])
                }
                if !writeFailed { try? await writer.finish(nil) }
            })
    }

    /// How an error response's line begins: the engine writes object keys sorted
    /// (``JSONValue/serializedBytes()``), and `error` sorts before `id`, `jsonrpc` and `result`.
    private static let errorPrefix = Array(#"{"error":{"#.utf8)

    /// One SSE event carrying `line` (a JSON-RPC message; its newline dropped).
    static func event(_ line: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(line.count + 24)
        buffer.writeString("event: message\ndata: ")
        buffer.writeBytes(line.last == 0x0A ? line.dropLast() : line[...])
        buffer.writeString("\n\n")
        return buffer
    }

    /// The HTTP status of a request's response: `200`, except protocol-level refusals the
    /// transport spec names (an unknown method is `404` in 2026-07-28; a parse error or an
    /// invalid request `400`; an unsupported version or a header mismatch `400`).
    ///
    /// `line` is a response as the engine writes it, keys sorted: only one that begins with its
    /// `error` member is parsed. (Scanning a 2.5 KB status result for an `"error":{` key was 1 %
    /// of an HTTP status read's CPU.)
    public static func status(ofResponse line: [UInt8], modern: Bool) -> HTTPResponse.Status {
        guard line.count < 65_536, line.starts(with: errorPrefix),
            let value = try? JSONValue(parsing: line), case .integer(let number)? = value["error"]?["code"]
        else {
            return .ok
        }
        switch Int(number) {
        case JSONRPCError.methodNotFoundCode: return modern ? .notFound : .ok
        case JSONRPCError.parseErrorCode, JSONRPCError.invalidRequestCode, JSONRPCError.unsupportedProtocolVersionCode,
            HeaderRules.headerMismatchCode:
            return .badRequest
        default: return .ok
        }
    }
}

/// A modern request's connection writes only into that request's queue.
struct ModernSink: MessageSink {
    let queue: OutboundQueue

    func send(_ line: [UInt8]) { send(line, route: .unsolicited) }

    func send(_ line: [UInt8], route: MessageRoute) {
        switch route {
        case .response: queue.push(.message(line, final: true))
        case .partOf: queue.push(.message(line, final: false))
        case .unsolicited: break // a 2026-07-28 connection has none (no legacy subscriptions, no handshake)
        }
    }
}

extension JSONRPCMessage {
    var requestID: MCPCore.RequestID? {
        switch self {
        case .request(let id, _, _), .result(let id, _): return id
        case .error(let id, _): return id
        case .notification: return nil
        }
    }

    var params: JSONValue? {
        switch self {
        case .request(_, _, let params), .notification(_, let params): return params
        case .result, .error: return nil
        }
    }
}
