import Foundation
import MCPHTTP
import PaymentsMCP

/// `--http` and its settings, read from the command line and the environment and checked once
/// (Docs/http.md).
struct HTTPSettings {
    var host: String
    var port: Int
    var transport: MCPHTTPConfiguration
    /// Bearer tokens, for the log redactor.
    var tokens: [String]
    /// Whether `/mcp` asks for a bearer token (static tokens or OAuth).
    var authenticated: Bool { transport.authenticator != nil }

    /// Whether `host` is a loopback address, which only this machine reaches: `localhost`, an
    /// IPv4 address in 127.0.0.0/8, `::1`, or an IPv4-mapped 127.x address. Compared as
    /// addresses, so neither `127.evil.example` nor `0:0:0:0:0:0:0:1` is mistaken.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
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
    static func parseAddress(_ text: String) -> (host: String, port: Int)? {
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

    static func load(
        address: String, tokensFile: String?,
        environment: [String: String]
    ) throws(ConfigurationError) -> HTTPSettings {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        guard let (host, port) = parseAddress(address) else {
            throw .invalidValue(
                variable: "--http", value: address, expected: "[HOST:]PORT, such as 8080, 127.0.0.1:8080 or [::1]:8080")
        }
        func positive(_ name: String, default fallback: Int) throws(ConfigurationError) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), number > 0 else {
                throw .invalidValue(variable: name, value: text, expected: "a positive integer")
            }
            return number
        }

        // Entries: TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE (comma-separated here,
        // one per line in the file).
        var entries: [(text: String, source: String)] = (value("AGENT_PAYMENTS_HTTP_TOKENS") ?? "").split(
            separator: ","
        )
        .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map {
            ($0, "AGENT_PAYMENTS_HTTP_TOKENS")
        }
        if let path = tokensFile ?? value("AGENT_PAYMENTS_HTTP_TOKENS_FILE") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .invalidValue(
                    variable: "--http-tokens-file", value: path,
                    expected: "a readable file with one token entry per line")
            }
            entries += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
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
        if let issuer = value("AGENT_PAYMENTS_OAUTH_ISSUER") {
            let scopes = (value("AGENT_PAYMENTS_OAUTH_SCOPE") ?? "").split(separator: " ").map(String.init)
            var audience = value("AGENT_PAYMENTS_OAUTH_AUDIENCE")
            if audience == nil, let base = value("CALLBACK_BASE_URL") {
                audience = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/mcp"
            }
            var algorithms = OAuthResourceServer.defaultAlgorithms
            if let text = value("AGENT_PAYMENTS_OAUTH_ALGORITHMS") {
                algorithms = text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
                if let unknown = algorithms.first(where: { !OAuthResourceServer.acceptedAlgorithms.contains($0) }) {
                    throw .invalidValue(
                        variable: "AGENT_PAYMENTS_OAUTH_ALGORITHMS", value: unknown,
                        expected: "algorithms among \(OAuthResourceServer.defaultAlgorithms.joined(separator: ", "))")
                }
            }
            let keyLifetime = try positive("AGENT_PAYMENTS_OAUTH_KEY_LIFETIME_SECONDS", default: 600)
            do {
                oauth = try OAuthResourceServer(
                    configuration: .init(
                        issuer: issuer, jwksURL: value("AGENT_PAYMENTS_OAUTH_JWKS_URL"),
                        audience: audience, requiredScopes: scopes, keyLifetime: .seconds(keyLifetime),
                        algorithms: algorithms, tenantClaim: value("AGENT_PAYMENTS_OAUTH_TENANT_CLAIM")))
            } catch {
                throw .invalidValue(variable: "AGENT_PAYMENTS_OAUTH_ISSUER", value: issuer, expected: error.description)
            }
            authenticators.append(oauth!)
        } else {
            for dependent in [
                "AGENT_PAYMENTS_OAUTH_JWKS_URL", "AGENT_PAYMENTS_OAUTH_AUDIENCE", "AGENT_PAYMENTS_OAUTH_SCOPE",
                "AGENT_PAYMENTS_OAUTH_TENANT_CLAIM", "AGENT_PAYMENTS_OAUTH_ALGORITHMS",
                "AGENT_PAYMENTS_OAUTH_KEY_LIFETIME_SECONDS",
            ] where value(dependent) != nil {
                throw .invalidValue(
                    variable: dependent, value: value(dependent)!,
                    expected: "set together with AGENT_PAYMENTS_OAUTH_ISSUER")
            }
        }
        func rate(_ name: String, default fallback: Int) throws(ConfigurationError) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), number >= 0 else {
                throw .invalidValue(
                    variable: name, value: text, expected: "a whole number per minute (0 turns the limit off)")
            }
            return number
        }
        let limits = RateLimits(
            toolCallsPerPrincipal: try rate("AGENT_PAYMENTS_RATE_TOOL_CALLS", default: 600),
            toolCallsPerAddress: try rate("AGENT_PAYMENTS_RATE_TOOL_CALLS_PER_ADDRESS", default: 3000),
            refusedAuthenticationsPerAddress: try rate("AGENT_PAYMENTS_RATE_AUTH_FAILURES", default: 60))
        let origins = (value("AGENT_PAYMENTS_ALLOWED_ORIGINS") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let transport = MCPHTTPConfiguration(
            allowedOrigins: Set(origins),
            authenticator: authenticators.isEmpty
                ? nil : (authenticators.count == 1 ? authenticators[0] : AnyOfAuthenticators(authenticators)),
            oauth: oauth,
            maximumStreamsPerClient: try positive("AGENT_PAYMENTS_HTTP_MAX_STREAMS", default: 16),
            maximumSessions: try positive("AGENT_PAYMENTS_HTTP_MAX_SESSIONS", default: 1000),
            maximumSessionsPerClient: try positive("AGENT_PAYMENTS_HTTP_MAX_SESSIONS_PER_CLIENT", default: 100),
            rateLimits: limits,
            sessionIdleTimeout: .seconds(try positive("AGENT_PAYMENTS_HTTP_SESSION_IDLE_SECONDS", default: 1800)),
            keepAliveInterval: .seconds(try positive("AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS", default: 15)),
            forwardedHeaders: [ServerConfiguration.callSIDHeader])
        return HTTPSettings(host: host, port: port, transport: transport, tokens: tokens.map(\.token))
    }

    /// `http://HOST:PORT` for a bound port.
    func localBaseURL(port: Int) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }
}
