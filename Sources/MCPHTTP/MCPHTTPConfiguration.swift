/// How the Streamable HTTP endpoint is set up: who may call it and the bounds it keeps.
public struct MCPHTTPConfiguration: Sendable {
    /// The MCP endpoint's path.
    public var path: String
    /// Browser origins allowed to call the endpoint (`https://app.example.com`). A request with
    /// any other `Origin` gets `403`; a request without one (a non-browser client) is allowed.
    public var allowedOrigins: Set<String>
    /// Judges bearer tokens; `nil` lets every request in (loopback and test benches only: the
    /// executable refuses anything else).
    public var authenticator: (any BearerAuthenticator)?
    /// The OAuth resource server, when tokens come from an issuer: its metadata is published
    /// at `/.well-known/oauth-protected-resource` and named in every `401`.
    public var oauth: OAuthResourceServer?
    /// The largest request body accepted (`413` past it).
    public var maximumBodyBytes: Int
    /// Event streams (listen streams, legacy session streams) one client may hold open at once;
    /// past it `429`. A client is its token's principal, or its address when unauthenticated.
    public var maximumStreamsPerClient: Int
    /// Event streams open at once, all clients together (`503` past it).
    public var maximumStreams: Int
    /// Legacy sessions at once (`503` past it).
    public var maximumSessions: Int
    /// Legacy sessions one client may hold at once (`429` past it), so that one client cannot
    /// take every session.
    public var maximumSessionsPerClient: Int
    /// How often clients may call tools and fail to authenticate.
    public var rateLimits: RateLimits
    /// A legacy session unused this long, with no open stream, expires.
    public var sessionIdleTimeout: Duration
    /// How often an open event stream carries a keep-alive comment.
    public var keepAliveInterval: Duration
    /// Messages kept for a legacy session while it has no stream open.
    public var sessionBacklog: Int
    /// Undelivered messages one response may hold before the oldest notifications are dropped.
    public var streamBuffer: Int
    /// Request headers handed to the engine with each message (``RequestContext/transportHeaders``,
    /// names lowercased): what a voice platform says about the call, such as `X-Twilio-Call-Sid`.
    /// Never credentials: `Authorization` and `Cookie` are not forwarded even when named.
    public var forwardedHeaders: [String] {
        didSet { forwardedHeaders = Self.forwardable(forwardedHeaders) }
    }
    /// Told of every presented credential refused (a malformed `Authorization`, a rejected token,
    /// a scope too narrow), after the refusal is answered: a host's audit trail. At most
    /// ``RateLimits/refusedAuthenticationsPerAddress`` a minute per address reach it; past that the
    /// address is not heard at all.
    public var onRefusedAuthentication: (@Sendable (RefusedAuthentication) async -> Void)?

    /// A credential that was refused, for ``onRefusedAuthentication``: never the credential.
    public struct RefusedAuthentication: Sendable, Equatable {
        /// The client's address.
        public var address: String
        /// Why: the authenticator's reason, or the scope that was missing.
        public var reason: String
        /// Who, when the token was good but its scopes too narrow.
        public var principal: String?

        public init(address: String, principal: String? = nil, reason: String) {
            self.address = address
            self.principal = principal
            self.reason = reason
        }
    }

    public init(
        path: String = "/mcp", allowedOrigins: Set<String> = [], authenticator: (any BearerAuthenticator)? = nil,
        oauth: OAuthResourceServer? = nil, maximumBodyBytes: Int = 1 << 20, maximumStreamsPerClient: Int = 16,
        maximumStreams: Int = 1000, maximumSessions: Int = 1000, maximumSessionsPerClient: Int = 100,
        rateLimits: RateLimits = RateLimits(), sessionIdleTimeout: Duration = .seconds(1800),
        keepAliveInterval: Duration = .seconds(15),
        sessionBacklog: Int = 64, streamBuffer: Int = 256, forwardedHeaders: [String] = []
    ) {
        self.path = "/" + path.split(separator: "/").joined(separator: "/")
        self.allowedOrigins = Set(allowedOrigins.map(Self.normalizedOrigin))
        self.authenticator = authenticator
        self.oauth = oauth
        self.maximumBodyBytes = maximumBodyBytes
        self.maximumStreamsPerClient = max(1, maximumStreamsPerClient)
        self.maximumStreams = max(1, maximumStreams)
        self.maximumSessions = max(1, maximumSessions)
        self.maximumSessionsPerClient = max(1, maximumSessionsPerClient)
        self.rateLimits = rateLimits
        self.sessionIdleTimeout = sessionIdleTimeout
        self.keepAliveInterval = keepAliveInterval
        self.sessionBacklog = max(0, sessionBacklog)
        self.streamBuffer = max(2, streamBuffer)
        self.forwardedHeaders = Self.forwardable(forwardedHeaders)
    }

    /// `names` lowercased, without credentials and repeats.
    static func forwardable(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.map { $0.lowercased() }.filter {
            !["authorization", "cookie", "proxy-authorization"].contains($0) && seen.insert($0).inserted
        }
    }

    /// An origin as compared: lowercased, without a trailing slash.
    static func normalizedOrigin(_ origin: String) -> String {
        let lowered = origin.lowercased()
        return lowered.hasSuffix("/") ? String(lowered.dropLast()) : lowered
    }
}

/// Request rates the endpoint allows, each a token bucket (a minute's worth on average, bursts
/// of a sixth of it); `0` turns a limit off. Past a limit: `429` with `Retry-After`.
///
/// The defaults are far above what a busy contact centre sends (a voice agent calls a tool every
/// few seconds at most), and low enough that a runaway or hostile client is stopped.
public struct RateLimits: Sendable, Equatable {
    /// `tools/call` requests per minute by one principal.
    public var toolCallsPerPrincipal: Int
    /// `tools/call` requests per minute from one source address (a proxy in front makes every
    /// client one address: raise it there).
    public var toolCallsPerAddress: Int
    /// Refused authentications per minute from one source address; past it, that address's
    /// tokens are not even judged until its bucket refills.
    public var refusedAuthenticationsPerAddress: Int

    public init(
        toolCallsPerPrincipal: Int = 600, toolCallsPerAddress: Int = 3000, refusedAuthenticationsPerAddress: Int = 60
    ) {
        self.toolCallsPerPrincipal = toolCallsPerPrincipal
        self.toolCallsPerAddress = toolCallsPerAddress
        self.refusedAuthenticationsPerAddress = refusedAuthenticationsPerAddress
    }
}
