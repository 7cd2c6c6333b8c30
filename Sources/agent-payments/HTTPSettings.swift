import Foundation
import MCPHTTP

/// `--http` and its settings, read from the command line and the environment and checked once
/// (Docs/http.md).
struct HTTPSettings {
    var host: String
    var port: Int
    var transport: MCPHTTPConfiguration
    /// Bearer tokens, for the log redactor.
    var tokens: [String]

    /// Whether `host` is a loopback address, which only this machine reaches.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }

    /// `[HOST:]PORT`, `[::1]:PORT`; host default 127.0.0.1.
    static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        var host = "127.0.0.1", portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
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

    static func load(address: String, tokensFile: String?, allowUnauthenticated: Bool,
                     environment: [String: String]) throws(ConfigurationError) -> HTTPSettings {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        guard let (host, port) = parseAddress(address) else {
            throw .invalidValue(variable: "--http", value: address, expected: "[HOST:]PORT, such as 8080, 127.0.0.1:8080 or [::1]:8080")
        }
        func positive(_ name: String, default fallback: Int) throws(ConfigurationError) -> Int {
            guard let text = value(name) else { return fallback }
            guard let number = Int(text), number > 0 else { throw .invalidValue(variable: name, value: text, expected: "a positive integer") }
            return number
        }

        var tokens = (value("AGENT_PAYMENTS_HTTP_TOKENS") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        if let path = tokensFile ?? value("AGENT_PAYMENTS_HTTP_TOKENS_FILE") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .invalidValue(variable: "--http-tokens-file", value: path, expected: "a readable file with one token per line")
            }
            tokens += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        var authenticators: [any BearerAuthenticator] = []
        if !tokens.isEmpty {
            do {
                authenticators.append(try StaticTokenAuthenticator(tokens: tokens))
            } catch {
                throw .invalidValue(variable: "AGENT_PAYMENTS_HTTP_TOKENS", value: "<\(tokens.count) tokens>", expected: error.description)
            }
        }
        var oauth: OAuthResourceServer?
        if let issuer = value("AGENT_PAYMENTS_OAUTH_ISSUER") {
            let scopes = (value("AGENT_PAYMENTS_OAUTH_SCOPE") ?? "").split(separator: " ").map(String.init)
            var audience = value("AGENT_PAYMENTS_OAUTH_AUDIENCE")
            if audience == nil, let base = value("CALLBACK_BASE_URL") {
                audience = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/mcp"
            }
            do {
                oauth = try OAuthResourceServer(configuration: .init(issuer: issuer, jwksURL: value("AGENT_PAYMENTS_OAUTH_JWKS_URL"),
                                                                     audience: audience, requiredScopes: scopes))
            } catch {
                throw .invalidValue(variable: "AGENT_PAYMENTS_OAUTH_ISSUER", value: issuer, expected: error.description)
            }
            authenticators.append(oauth!)
        } else {
            for dependent in ["AGENT_PAYMENTS_OAUTH_JWKS_URL", "AGENT_PAYMENTS_OAUTH_AUDIENCE", "AGENT_PAYMENTS_OAUTH_SCOPE"] where value(dependent) != nil {
                throw .invalidValue(variable: dependent, value: value(dependent)!, expected: "set together with AGENT_PAYMENTS_OAUTH_ISSUER")
            }
        }
        if authenticators.isEmpty, !isLoopback(host), !allowUnauthenticated {
            throw .unauthenticatedNetworkListener(host: host)
        }
        let origins = (value("AGENT_PAYMENTS_ALLOWED_ORIGINS") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let transport = MCPHTTPConfiguration(
            allowedOrigins: Set(origins),
            authenticator: authenticators.isEmpty ? nil : (authenticators.count == 1 ? authenticators[0] : AnyOfAuthenticators(authenticators)),
            oauth: oauth,
            maximumStreamsPerClient: try positive("AGENT_PAYMENTS_HTTP_MAX_STREAMS", default: 16),
            maximumSessions: try positive("AGENT_PAYMENTS_HTTP_MAX_SESSIONS", default: 1000),
            sessionIdleTimeout: .seconds(try positive("AGENT_PAYMENTS_HTTP_SESSION_IDLE_SECONDS", default: 1800)),
            keepAliveInterval: .seconds(try positive("AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS", default: 15)),
            forwardedHeaders: [ServerConfiguration.callSIDHeader])
        return HTTPSettings(host: host, port: port, transport: transport, tokens: tokens)
    }

    /// `http://HOST:PORT` for a bound port.
    func localBaseURL(port: Int) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }
}
