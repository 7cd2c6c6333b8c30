import Foundation
public import MCPHTTP
import PaymentsMCP

/// `--http` and its settings, read from the command line and the environment and checked once
/// (Docs/http.md).
public struct HTTPSettings: Sendable {
    public var host: String
    public var port: Int
    public var transport: MCPHTTPConfiguration
    /// Bearer tokens, for the log redactor.
    public var tokens: [String]
    /// Whether `/mcp` asks for a bearer token (static tokens or OAuth).
    public var authenticated: Bool { transport.authenticator != nil }

    /// Whether `host` is a loopback address, which only this machine reaches: `localhost`, an
    /// IPv4 address in 127.0.0.0/8, `::1`, or an IPv4-mapped 127.x address. Compared as
    /// addresses, so neither `127.evil.example` nor `0:0:0:0:0:0:0:1` is mistaken.
    public static func isLoopback(_ host: String) -> Bool {
        var bracketed = Substring(host)
        while bracketed.first == "[" || bracketed.first == "]" { bracketed.removeFirst() }
        while bracketed.last == "[" || bracketed.last == "]" { bracketed.removeLast() }
        let bare = bracketed.lowercased()
        if bare == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, bare, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        // ::ffff:127.x.y.z
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// `[HOST:]PORT`, `[::1]:PORT`; host default 127.0.0.1.
    public static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        var host = "127.0.0.1", portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.contains(":") || host.isEmpty { return nil }
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host, port)
    }

    /// `--http` at `address`, with its tokens, OAuth and bounds from `settings`.
    public static func load(address: String, settings: Settings) throws(ConfigurationError) -> HTTPSettings {
        func value(_ setting: Setting) -> String? { settings.isSet(setting) ? settings.value(setting) : nil }
        guard let (host, port) = parseAddress(address) else {
            throw .invalidValue(
                variable: "--http", value: address, expected: "[HOST:]PORT, such as 8080, 127.0.0.1:8080 or [::1]:8080")
        }
        func positive(_ setting: Setting) throws(ConfigurationError) -> Int {
            try settings.integer(setting, in: 1...Int.max, expected: "a positive integer")
        }

        // Entries: TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE (comma-separated here,
        // one per line in the file).
        var entries: [(text: String, source: String)] = (settings.raw(.httpTokens) ?? "").split(
            separator: ","
        )
        .map { $0.trimmed }.filter { !$0.isEmpty }.map {
            ($0, "AGENT_PAYMENTS_HTTP_TOKENS")
        }
        if let path = value(.httpTokensFile) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .invalidValue(
                    variable: "--http-tokens-file", value: path,
                    expected: "a readable file with one token entry per line")
            }
            entries += text.split(whereSeparator: \.isNewline).map { $0.trimmed }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }.map { ($0, "--http-tokens-file") }
        }
        var tokens: [StaticToken] = []
        for (index, entry) in entries.enumerated() {
            switch StaticToken.parse(entry.text) {
            case .success(let token): tokens.append(token)
            case .failure(let problem):
                throw .invalidValue(
                    variable: entry.source, value: "<entry \(index + 1)>", expected: problem.description)
            }
        }
        var authenticators: [any BearerAuthenticator] = []
        if !tokens.isEmpty {
            do {
                // An entry that names no scopes may do all but see everyone's payments.
                authenticators.append(
                    try StaticTokenAuthenticator(entries: tokens, defaultScopes: PaymentScope.defaultForTokens))
            } catch {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_HTTP_TOKENS", value: "<\(tokens.count) tokens>",
                    expected: error.description)
            }
        }
        var oauth: OAuthResourceServer?
        if let issuer = value(.oauthIssuer) {
            let scopes = (value(.oauthScope) ?? "").split(separator: " ").map(String.init)
            var audience = value(.oauthAudience)
            if audience == nil, let base = value(.callbackBaseURL) {
                audience = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/mcp"
            }
            var algorithms = OAuthResourceServer.defaultAlgorithms
            if let text = value(.oauthAlgorithms) {
                algorithms = text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
                if let unknown = algorithms.first(where: { !OAuthResourceServer.acceptedAlgorithms.contains($0) }) {
                    throw .invalidValue(
                        variable: "AGENT_PAYMENTS_OAUTH_ALGORITHMS", value: unknown,
                        expected: "algorithms among \(OAuthResourceServer.defaultAlgorithms.joined(separator: ", "))")
                }
            }
            let keyLifetime = try positive(.oauthKeyLifetime)
            do {
                oauth = try OAuthResourceServer(
                    configuration: .init(
                        issuer: issuer, jwksURL: value(.oauthJWKSURL),
                        audience: audience, requiredScopes: scopes, keyLifetime: .seconds(keyLifetime),
                        algorithms: algorithms, tenantClaim: value(.oauthTenantClaim)))
            } catch {
                throw .invalidValue(variable: "AGENT_PAYMENTS_OAUTH_ISSUER", value: issuer, expected: error.description)
            }
            authenticators.append(oauth!)
        } else {
            for dependent in [
                Setting.oauthJWKSURL, .oauthAudience, .oauthScope, .oauthTenantClaim, .oauthAlgorithms,
                .oauthKeyLifetime,
            ] {
                if let text = value(dependent) {
                    throw .invalidValue(
                        variable: dependent.name, value: text, expected: "set together with AGENT_PAYMENTS_OAUTH_ISSUER"
                    )
                }
            }
        }
        func rate(_ setting: Setting) throws(ConfigurationError) -> Int {
            try settings.integer(
                setting, in: 0...Int.max, expected: "a whole number per minute (0 turns the limit off)")
        }
        let limits = RateLimits(
            toolCallsPerPrincipal: try rate(.rateToolCalls),
            toolCallsPerAddress: try rate(.rateToolCallsPerAddress),
            refusedAuthenticationsPerAddress: try rate(.rateAuthenticationFailures))
        let origins = (value(.allowedOrigins) ?? "").split(separator: ",")
            .map { $0.trimmed }.filter { !$0.isEmpty }
        let transport = MCPHTTPConfiguration(
            allowedOrigins: Set(origins),
            authenticator: authenticators.isEmpty
                ? nil : (authenticators.count == 1 ? authenticators[0] : AnyOfAuthenticators(authenticators)),
            oauth: oauth,
            maximumStreamsPerClient: try positive(.httpMaximumStreams),
            maximumSessions: try positive(.httpMaximumSessions),
            maximumSessionsPerClient: try positive(.httpMaximumSessionsPerClient),
            rateLimits: limits,
            sessionIdleTimeout: .seconds(try positive(.httpSessionIdle)),
            keepAliveInterval: .seconds(try positive(.httpKeepAlive)),
            forwardedHeaders: [ServerConfiguration.callSIDHeader])
        return HTTPSettings(host: host, port: port, transport: transport, tokens: tokens.map(\.token))
    }

    /// `http://HOST:PORT` for a bound port.
    public func localBaseURL(port: Int) -> String {
        Self.url(host: host, port: port)
    }

    /// `http://HOST:PORT`, an IPv6 host in brackets.
    public static func url(host: String, port: Int) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }
}
