import Foundation
public import Hummingbird
import HTTPTypes
public import Logging
public import MCPCore
public import NIOCore
import Synchronization

/// MCP over Streamable HTTP, both eras on one endpoint, as routes on a Hummingbird router.
///
/// - A **modern** (2026-07-28) POST gets an engine connection of its own: its headers are
///   checked against its body, the response is one JSON object, or an event stream when
///   request-scoped notifications come first (and always for `subscriptions/listen`), and
///   closing the response cancels the request.
/// - A **legacy** (2025-03-26 … 2025-11-25) client opens a session with `initialize`
///   (`Mcp-Session-Id`); the session is one engine connection, whose messages that belong to
///   no request go to its `GET` stream (kept while none is open), and `DELETE` ends it.
///
/// Every request passes the `Origin` check and the bearer check first. Docs/http.md has the
/// whole contract.
public final class MCPHTTPTransport: Sendable {
    public let server: MCPServer
    public let configuration: MCPHTTPConfiguration
    let logger: Logger
    let sessions = Mutex<[String: LegacySession]>([:])
    private let openStreams = Mutex<[String: Int]>([:])
    private let state = Mutex<(baseURL: String?, shuttingDown: Bool)>((nil, false))
    let watch = ConnectionWatch()
    let toolCallsByPrincipal: RateLimiter
    let toolCallsByAddress: RateLimiter
    let refusalsByAddress: RateLimiter
    /// The headers passed on to the engine (``MCPHTTPConfiguration/forwardedHeaders`` and the
    /// W3C trace context): the key the engine reads each under, by canonical (lowercase) field
    /// name, made once so that each request reads its fields in one pass.
    let forwardedNames: [String: String]

    public init(
        server: MCPServer, configuration: MCPHTTPConfiguration = MCPHTTPConfiguration(),
        logger: Logger = Logger(label: "agent-payments.http")
    ) {
        self.server = server
        self.configuration = configuration
        self.logger = logger
        toolCallsByPrincipal = RateLimiter(perMinute: configuration.rateLimits.toolCallsPerPrincipal)
        toolCallsByAddress = RateLimiter(perMinute: configuration.rateLimits.toolCallsPerAddress)
        refusalsByAddress = RateLimiter(perMinute: configuration.rateLimits.refusedAuthenticationsPerAddress)
        forwardedNames = Dictionary(
            (configuration.forwardedHeaders + RequestContext.traceContextKeys).compactMap { name in
                HTTPField.Name(name).map { ($0.canonicalName, name) }
            },
            uniquingKeysWith: { first, _ in first })
    }

    /// The base URL (scheme, host, port) clients reach this server at: it names the
    /// protected-resource metadata in `401` responses.
    public func setBaseURL(_ url: String) {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        state.withLock { $0.baseURL = trimmed }
        configuration.oauth?.useDefaultAudience(trimmed + configuration.path)
    }

    var baseURL: String? { state.withLock { $0.baseURL } }

    /// Open legacy sessions.
    public var sessionCount: Int { sessions.withLock { $0.count } }

    /// Event streams open now, all clients together.
    public var openStreamCount: Int { openStreams.withLock { $0.values.reduce(0, +) } }

    // MARK: Routes

    /// Adds `POST`/`GET`/`DELETE` on the endpoint (`405` for other methods) and, with OAuth, the
    /// protected-resource metadata. `channel` gives a request's connection, so an event stream
    /// can notice its client leave before it next writes.
    public func addRoutes<Context: Hummingbird.RequestContext>(
        to router: Router<Context>,
        channel: @escaping @Sendable (Context) -> (any Channel)?
    ) {
        let path = RouterPath(configuration.path)
        router.post(path) { [self] request, context in
            await handlePost(request, channel: channel(context))
        }
        router.get(path) { [self] request, context in
            await handleGet(request, channel: channel(context))
        }
        router.delete(path) { [self] request, context in
            await handleDelete(request, channel: channel(context))
        }
        for method in [HTTPRequest.Method.put, .patch, .head, .options] {
            router.on(path, method: method) { [self] request, _ -> Response in
                if let refusal = originRefusal(request) { return refusal }
                return Self.methodNotAllowed(
                    "the MCP endpoint answers POST (and GET, DELETE for legacy sessions)", allow: "GET, POST, DELETE")
            }
        }
        let wellKnown = "/.well-known/oauth-protected-resource"
        for metadataPath in [wellKnown, wellKnown + configuration.path] {
            router.get(RouterPath(metadataPath)) { [self] request, _ -> Response in
                if let refusal = originRefusal(request) { return refusal }
                guard let oauth = configuration.oauth, let document = oauth.metadata else {
                    return Response(status: .notFound)
                }
                let body =
                    (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
                return Response(
                    status: .ok, headers: [.contentType: "application/json", .cacheControl: "max-age=300"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
            }
        }
    }

    // MARK: Shutdown and expiry

    /// Ends every stream gracefully, as before a shutdown: listen streams end with their result,
    /// legacy session streams close, new requests get `503`. Waits (up to `timeout`) for the
    /// streams to be written out, then cancels what still runs.
    public func shutdown(waitingUpTo timeout: Duration = .seconds(3)) async {
        state.withLock { $0.shuttingDown = true }
        server.endSubscriptions()
        for session in sessions.withLock({ Array($0.values) }) { session.endStream() }
        let deadline = ContinuousClock.now + timeout
        while openStreamCount > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for session in sessions.withLock({ state in
            defer { state.removeAll() }
            return Array(state.values)
        }) { session.close() }
    }

    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Removes legacy sessions unused for longer than the idle timeout that have no open stream
    /// and no request in progress; returns how many.
    @discardableResult
    public func expireIdleSessions(now: ContinuousClock.Instant = .now) -> Int {
        let expired = sessions.withLock { sessions -> [LegacySession] in
            let expired = sessions.values.filter { $0.isIdle(since: now - configuration.sessionIdleTimeout) }
            for session in expired { sessions.removeValue(forKey: session.id) }
            return expired
        }
        for session in expired { session.close() }
        if !expired.isEmpty {
            logger.debug("legacy sessions expired", metadata: ["sessions.expired": "\(expired.count)"])
        }
        return expired.count
    }

    // MARK: Stream slots

    func acquireStream(for principal: String) -> Bool {
        openStreams.withLock { open in
            guard open[principal, default: 0] < configuration.maximumStreamsPerClient,
                open.values.reduce(0, +) < configuration.maximumStreams
            else { return false }
            open[principal, default: 0] += 1
            return true
        }
    }

    func releaseStream(for principal: String) {
        openStreams.withLock { open in
            let remaining = open[principal, default: 1] - 1
            open[principal] = remaining > 0 ? remaining : nil
        }
    }
}

// MARK: - Admission: Origin and bearer

extension MCPHTTPTransport {
    /// `403` when the request carries an `Origin` that is not allowed.
    func originRefusal(_ request: Request) -> Response? {
        guard let origin = request.headers[.origin] else { return nil }
        guard configuration.allowedOrigins.contains(MCPHTTPConfiguration.normalizedOrigin(origin)) else {
            logger.notice(
                "request refused: origin not allowed",
                metadata: ["http.origin": "\(HeaderRules.isPlainFieldValue(origin) ? origin : "<malformed>")"])
            return Self.errorResponse(
                .forbidden,
                JSONRPCError(
                    code: JSONRPCError.invalidRequestCode,
                    message: "Forbidden: origin \(origin.prefix(100)) is not allowed (AGENT_PAYMENTS_ALLOWED_ORIGINS)"))
        }
        return nil
    }

    /// Who is calling: the principal the engine serves, the key its limits count under (the
    /// principal's id, or its address when nobody authenticates), and its source address.
    struct Caller: Sendable {
        let principal: Principal
        let key: String
        let address: String
    }

    enum Admission {
        case admitted(Caller)
        case refused(Response)
    }

    /// The Origin check, then the bearer check: who is calling, or the response that refuses.
    func admit(_ request: Request, channel: (any Channel)?) async -> Admission {
        if let refusal = originRefusal(request) { return .refused(refusal) }
        if isShuttingDown {
            return .refused(
                Self.errorResponse(
                    .serviceUnavailable,
                    JSONRPCError(
                        code: JSONRPCError.internalErrorCode,
                        message: "the server is shutting down")))
        }
        let address = channel?.remoteAddress?.ipAddress ?? "unknown"
        guard let authenticator = configuration.authenticator else {
            // Nobody authenticates (a loopback bench): one principal that may do everything.
            return .admitted(Caller(principal: Principal(id: "anonymous"), key: "address:" + address, address: address))
        }
        let metadata = resourceMetadataParameter
        // An address that keeps presenting bad tokens is not heard until its bucket refills.
        if let retry = refusalsByAddress.isExhausted(address) {
            logger.notice(
                "request refused: too many refused authentications from this address",
                metadata: ["client.address": "\(address)"])
            return .refused(
                Self.errorResponse(
                    .tooManyRequests,
                    JSONRPCError(
                        code: -32001, message: "Too many refused authentications from this address; try again later"),
                    headers: [.retryAfter: "\(retry)"]))
        }
        guard let header = request.headers[.authorization] else {
            return .refused(
                Self.errorResponse(
                    .unauthorized, JSONRPCError(code: -32001, message: "Unauthorized: a bearer token is required"),
                    headers: [.wwwAuthenticate: "Bearer " + (metadata ?? "realm=\"agent-payments\"")]))
        }
        guard let token = bearerToken(fromAuthorization: header) else {
            _ = refusalsByAddress.take(address)
            await configuration.onRefusedAuthentication?(
                .init(address: address, reason: "the Authorization header is not a bearer token"))
            return .refused(
                unauthorized(
                    "the Authorization header is not a bearer token", metadata: metadata, error: "invalid_request"))
        }
        switch await authenticator.authenticate(token: token) {
        case .accepted(let principal):
            return .admitted(Caller(principal: principal, key: principal.id, address: address))
        case .rejected(let reason):
            _ = refusalsByAddress.take(address)
            logger.notice(
                "request refused: bearer token rejected",
                metadata: ["reason": "\(reason)", "client.address": "\(address)"])
            await configuration.onRefusedAuthentication?(.init(address: address, reason: reason))
            return .refused(unauthorized(reason, metadata: metadata, error: "invalid_token"))
        case .insufficientScope(let required):
            await configuration.onRefusedAuthentication?(
                .init(address: address, reason: "insufficient scope: \(required.joined(separator: " ")) required"))
            return .refused(insufficientScope(required))
        case .unavailable(let reason):
            logger.warning("bearer token could not be checked", metadata: ["reason": "\(reason)"])
            return .refused(
                Self.errorResponse(
                    .serviceUnavailable,
                    JSONRPCError(
                        code: JSONRPCError.internalErrorCode,
                        message: "the token cannot be checked now; try again shortly"),
                    headers: [.retryAfter: "5"]))
        }
    }

    /// What ``authenticate(_:channel:)`` says of a request.
    public enum Authentication: Sendable {
        /// Who is calling (the anonymous principal when nobody authenticates).
        case principal(Principal)
        /// The response that refuses it (`401`, `403`, `429`, `503`).
        case refused(Response)
    }

    /// Checks a request to another route of the same listener (the backend's amount-due
    /// endpoint, say) exactly as the MCP endpoint checks its own: Origin, bearer token, and the
    /// rate limit on refused authentications.
    public func authenticate(_ request: Request, channel: (any Channel)?) async -> Authentication {
        switch await admit(request, channel: channel) {
        case .admitted(let caller): return .principal(caller.principal)
        case .refused(let response): return .refused(response)
        }
    }

    /// `403 insufficient_scope` naming `required`, as the MCP authorization spec's step-up asks:
    /// the client may obtain a token with those scopes and try again.
    func insufficientScope(_ required: [String], id: MCPCore.RequestID? = nil) -> Response {
        let scope = required.joined(separator: " ")
        var challenge = "Bearer error=\"insufficient_scope\", scope=\"\(scope)\""
        if let metadata = resourceMetadataParameter { challenge += ", " + metadata }
        return Self.errorResponse(
            .forbidden, JSONRPCError(code: -32001, message: "Forbidden: the token lacks the scope \(scope)"),
            id: id, headers: [.wwwAuthenticate: challenge])
    }

    /// `resource_metadata="…"` when OAuth is configured and the base URL known.
    var resourceMetadataParameter: String? {
        guard configuration.oauth != nil, let base = baseURL else { return nil }
        return "resource_metadata=\"\(base)/.well-known/oauth-protected-resource\(configuration.path)\""
    }

    func unauthorized(_ reason: String, metadata: String?, error: String) -> Response {
        var challenge =
            "Bearer error=\"\(error)\", error_description=\"\(reason.replacingOccurrences(of: "\"", with: "'"))\""
        if let metadata { challenge += ", " + metadata }
        return Self.errorResponse(
            .unauthorized, JSONRPCError(code: -32001, message: "Unauthorized: \(reason)"),
            headers: [.wwwAuthenticate: challenge])
    }

    static func methodNotAllowed(_ detail: String, allow: String) -> Response {
        errorResponse(.methodNotAllowed, .invalidRequest(detail), headers: [.allow: allow])
    }

    static func errorResponse(
        _ status: HTTPResponse.Status, _ error: JSONRPCError, id: MCPCore.RequestID? = nil,
        headers: HTTPFields = [:]
    ) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(
            status: status, headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONRPCMessage.error(id: id, error: error).encodedLine())))
    }
}

extension HTTPField.Name {
    static let mcpSessionID = Self("Mcp-Session-Id")!
    static let mcpProtocolVersion = Self("MCP-Protocol-Version")!
    static let mcpMethod = Self("Mcp-Method")!
    static let mcpName = Self("Mcp-Name")!
    static let accelBuffering = Self("X-Accel-Buffering")!
}
