public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JWTKit
import MCPCore
import Synchronization

/// An OAuth 2.1 resource server for the MCP endpoint: it accepts JWT access tokens from one
/// issuer, verified against the issuer's JWKS (RS256/384/512, PS256/384/512, ES256/384/512,
/// EdDSA), and checks `iss`, `aud` (RFC 8707: the canonical MCP URL), `exp` and `nbf` with a
/// small leeway, and the required scopes.
///
/// Keys are fetched on first use (from the configured JWKS URL, or from `jwks_uri` in the
/// issuer's metadata), cached for at most ``Configuration/keyLifetime`` (a key the issuer
/// withdrew stops verifying then), and fetched again when a token names a key id the cache does
/// not know (rotation). Every fetch, the first included, counts against
/// ``Configuration/refreshesPerMinute``, so neither tokens with random key ids nor an issuer
/// that is down can make the server hammer it.
///
/// Each key's algorithm is fixed when it is loaded: its own `alg`, or, when it has none (Entra
/// ID publishes none), the one its `kty` and curve imply within ``Configuration/algorithms``. A
/// token whose header names another algorithm is refused; the token never chooses.
///
/// The principal is the token's `sub` (`oauth:SUB`), else its `client_id` or `azp`
/// (`oauth-client:ID`; a token with none is refused); its scopes are the token's `scope`/`scp`; its tenant is the claim
/// ``Configuration/tenantClaim`` names.
public final class OAuthResourceServer: BearerAuthenticator {
    /// How the resource server is set up.
    public struct Configuration: Sendable {
        /// The `iss` every token must carry, and where metadata is discovered.
        public var issuer: String
        /// The JWKS URL; `nil` discovers it from the issuer's metadata
        /// (`/.well-known/oauth-authorization-server`, then `/.well-known/openid-configuration`).
        public var jwksURL: String?
        /// The `aud` a token must contain: the canonical URL of the MCP endpoint; `nil` until the
        /// endpoint knows its URL (``OAuthResourceServer/useDefaultAudience(_:)``).
        public var audience: String?
        /// Scopes every token must carry (from `scope`, space separated, or `scp`).
        public var requiredScopes: [String]
        /// Clock skew tolerated on `exp` and `nbf`.
        public var leeway: Duration
        /// How many times a minute the JWKS may be fetched (the first fetch, unknown key ids and
        /// expiry alike).
        public var refreshesPerMinute: Int
        /// How long fetched keys are trusted before they must be fetched again.
        public var keyLifetime: Duration
        /// The algorithms accepted, in order of preference: a key without `alg` gets the first one
        /// its type allows (an RSA key: the first RS or PS algorithm listed).
        public var algorithms: [String]
        /// The claim that names the principal's tenant (`tid`, `org_id`…), if the deployment has
        /// tenants.
        public var tenantClaim: String?
        /// How a document is fetched (the default uses URLSession with a 5 s timeout).
        public var fetch: @Sendable (URL) async throws -> Data

        public init(
            issuer: String, jwksURL: String? = nil, audience: String? = nil, requiredScopes: [String] = [],
            leeway: Duration = .seconds(60), refreshesPerMinute: Int = 10, keyLifetime: Duration = .seconds(600),
            algorithms: [String] = OAuthResourceServer.defaultAlgorithms, tenantClaim: String? = nil,
            fetch: @escaping @Sendable (URL) async throws -> Data = OAuthResourceServer.fetchWithURLSession
        ) {
            self.issuer = issuer
            self.jwksURL = jwksURL
            self.audience = audience
            self.requiredScopes = requiredScopes
            self.leeway = leeway
            self.refreshesPerMinute = max(1, refreshesPerMinute)
            self.keyLifetime = max(keyLifetime, .seconds(1))
            self.algorithms = algorithms.filter(OAuthResourceServer.acceptedAlgorithms.contains)
            self.tenantClaim = tenantClaim
            self.fetch = fetch
        }
    }

    /// Why a configuration cannot be used.
    public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
        /// The issuer or JWKS URL is not https (http is allowed on loopback only).
        case insecureURL(setting: String, url: String)
        /// No accepted algorithm was configured.
        case noAlgorithms

        public var description: String {
            switch self {
            case .insecureURL(let setting, let url):
                return
                    "\(setting) must be an absolute https URL (http only on 127.0.0.1, ::1 or localhost), got \"\(url)\""
            case .noAlgorithms:
                return
                    "AGENT_PAYMENTS_OAUTH_ALGORITHMS names no accepted algorithm (choose from \(OAuthResourceServer.defaultAlgorithms.joined(separator: ", ")))"
            }
        }
    }

    /// Signature algorithms accepted in a token's header (never `none`, never HMAC: a public
    /// key must not be usable as a shared secret).
    public static let acceptedAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]
    /// The default order of ``Configuration/algorithms``: RS256 first, as most issuers sign.
    public static let defaultAlgorithms = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]

    /// The issuer's keys as loaded: the collection, each key id's fixed algorithm, and when.
    struct LoadedKeys: Sendable {
        var collection: JWTKeyCollection
        var algorithms: [String: String]
        var fetchedAt: ContinuousClock.Instant
    }

    public let configuration: Configuration
    private let defaultAudience = Mutex<String?>(nil)
    private let keys = Mutex<LoadedKeys?>(nil)
    private let refreshes = Mutex<[ContinuousClock.Instant]>([])
    private let loading = Mutex<Task<Result<LoadedKeys, any Error>, Never>?>(nil)
    private let lastFailure = Mutex<String?>(nil)

    public init(configuration: Configuration) throws(ConfigurationError) {
        for (setting, url) in [
            ("AGENT_PAYMENTS_OAUTH_ISSUER", configuration.issuer),
            ("AGENT_PAYMENTS_OAUTH_JWKS_URL", configuration.jwksURL),
        ] {
            guard let url else { continue }
            guard Self.isSecure(url) else { throw .insecureURL(setting: setting, url: url) }
        }
        guard !configuration.algorithms.isEmpty else { throw .noAlgorithms }
        self.configuration = configuration
    }

    static func isSecure(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased()
        else { return false }
        if scheme == "https" { return true }
        return scheme == "http" && ["127.0.0.1", "::1", "[::1]", "localhost"].contains(host)
    }

    /// The audience used when none is configured: the endpoint's canonical URL, once known.
    public func useDefaultAudience(_ url: String) {
        defaultAudience.withLock { $0 = url }
    }

    /// The audience tokens must name: configured, or the endpoint's canonical URL.
    public var audience: String? { configuration.audience ?? defaultAudience.withLock { $0 } }

    /// What `/.well-known/oauth-protected-resource` publishes (RFC 9728); `nil` until the
    /// resource's URL is known.
    public var metadata: [String: Any]? {
        guard let audience else { return nil }
        var document: [String: Any] = [
            "resource": audience,
            "authorization_servers": [configuration.issuer],
            "bearer_methods_supported": ["header"],
        ]
        if !configuration.requiredScopes.isEmpty { document["scopes_supported"] = configuration.requiredScopes }
        return document
    }

    // MARK: Verification

    public func authenticate(token: String) async -> AuthenticationOutcome {
        let header: TokenHeader
        switch TokenHeader.parse(token) {
        case .success(let parsed): header = parsed
        case .failure(let reason): return .rejected(reason: reason.description)
        }
        guard configuration.algorithms.contains(header.algorithm) else {
            return .rejected(reason: "tokens signed with \(Self.printable(header.algorithm)) are not accepted")
        }
        let loaded: LoadedKeys
        switch await keys(for: header.keyID) {
        case .success(let current): loaded = current
        case .failure(let error): return .unavailable(reason: "the issuer's keys could not be fetched: \(error)")
        }
        // The key, and its algorithm, fixed when the key was loaded: never the token's choice.
        let kid: String
        if let named = header.keyID {
            kid = named
        } else if loaded.algorithms.count == 1, let only = loaded.algorithms.keys.first {
            kid = only
        } else {
            return .rejected(reason: "the token names no key id (kid) and the issuer has several keys")
        }
        guard let algorithm = loaded.algorithms[kid] else {
            return .rejected(reason: "the token's key id is not in the issuer's key set")
        }
        guard algorithm == header.algorithm else {
            return .rejected(reason: "the token's algorithm is not its key's (\(algorithm))")
        }
        let claims: AccessTokenClaims
        do {
            claims = try await loaded.collection.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .rejected(reason: "the token's signature is not valid")
        } catch {
            return .rejected(reason: "the token could not be verified")
        }
        return check(claims, now: Date())
    }

    /// `text` shortened and stripped of anything but printable ASCII, for a message.
    static func printable(_ text: String) -> String {
        String(
            text.unicodeScalars.prefix(32).map {
                $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? Character($0) : "?"
            })
    }

    func check(_ claims: AccessTokenClaims, now: Date) -> AuthenticationOutcome {
        let leeway = Double(configuration.leeway.components.seconds)
        guard let audience else { return .unavailable(reason: "the endpoint's canonical URL is not known yet") }
        guard claims.iss == configuration.issuer else {
            return .rejected(reason: "the token was issued by another issuer")
        }
        guard let audiences = claims.aud, audiences.contains(audience) else {
            return .rejected(reason: "the token is not meant for this resource (aud)")
        }
        guard let expiry = claims.exp else { return .rejected(reason: "the token has no expiry (exp)") }
        guard now.timeIntervalSince1970 < expiry + leeway else { return .rejected(reason: "the token has expired") }
        if let notBefore = claims.nbf, now.timeIntervalSince1970 + leeway < notBefore {
            return .rejected(reason: "the token is not valid yet (nbf)")
        }
        let missing = configuration.requiredScopes.filter { !claims.scopes.contains($0) }
        guard missing.isEmpty else { return .insufficientScope(required: configuration.requiredScopes) }
        // A token that names nobody cannot own anything: refused rather than shared.
        // A user (`sub`) and a client (`client_id`, `azp`) that happen to share a name are two
        // principals: `oauth:NAME` and `oauth-client:NAME`.
        let id: String
        if let subject = claims.sub, !subject.isEmpty {
            id = "oauth:" + subject
        } else if let client = [claims.strings["client_id"], claims.strings["azp"]].compactMap({ $0 }).first(where: {
            !$0.isEmpty
        }) {
            id = "oauth-client:" + client
        } else {
            return .rejected(reason: "the token names no subject (sub, client_id or azp)")
        }
        let tenant = configuration.tenantClaim.flatMap { claims.strings[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        return .accepted(Principal(id: id, tenant: tenant, scopes: claims.scopes))
    }

    // MARK: Keys

    /// The keys to judge a token naming `kid` with: the cached keys while they are fresh and
    /// know `kid`; otherwise fetched again (once at a time, and within the rate limit). A fetch
    /// that fails, or is not allowed yet, leaves fresh keys in use; expired keys are never used.
    func keys(for kid: String?) async -> Result<LoadedKeys, any Error> {
        let now = ContinuousClock.now
        let cached = keys.withLock { $0 }
        let fresh = cached.flatMap { now - $0.fetchedAt < configuration.keyLifetime ? $0 : nil }
        if let fresh, kid.map({ fresh.algorithms[$0] != nil }) ?? true { return .success(fresh) }
        let task = loading.withLock { loading -> Task<Result<LoadedKeys, any Error>, Never>? in
            if let running = loading { return running }
            let allowed = refreshes.withLock { recent -> Bool in
                recent.removeAll { now - $0 > .seconds(60) }
                guard recent.count < configuration.refreshesPerMinute else { return false }
                recent.append(now)
                return true
            }
            guard allowed else { return nil }
            let task = Task { [self] in await fetchKeys() }
            loading = task
            return task
        }
        guard let task else {
            if let fresh { return .success(fresh) }
            let reason = lastFailure.withLock { $0 } ?? "the key set expired"
            return .failure(DiscoveryError(description: "\(reason); fetching again is rate limited, try again shortly"))
        }
        let result = await task.value
        loading.withLock { if $0 == task { $0 = nil } }
        switch result {
        case .success(let loaded):
            keys.withLock { $0 = loaded }
            lastFailure.withLock { $0 = nil }
            return .success(loaded)
        case .failure(let error):
            lastFailure.withLock { $0 = String(describing: error) }
            if let fresh { return .success(fresh) }
            return .failure(error)
        }
    }

    private func fetchKeys() async -> Result<LoadedKeys, any Error> {
        do {
            let jwksURL = try await discoverJWKSURL()
            let data = try await configuration.fetch(jwksURL)
            let jwks = try JSONDecoder().decode(JWKS.self, from: data)
            let collection = JWTKeyCollection()
            var algorithms: [String: String] = [:]
            for key in jwks.keys {
                // A key this library cannot use (another type, no kid, no algorithm we accept) is
                // skipped, not fatal. Its algorithm is fixed here, so jwt-kit never takes the token's.
                guard let kid = key.keyIdentifier?.string,
                    let algorithm = Self.algorithm(of: key, accepted: configuration.algorithms),
                    let fixed = JWK.Algorithm(rawValue: algorithm)
                else { continue }
                var pinned = key
                pinned.algorithm = fixed
                guard (try? await collection.add(jwk: pinned)) != nil else { continue }
                algorithms[kid] = algorithm
            }
            return .success(LoadedKeys(collection: collection, algorithms: algorithms, fetchedAt: .now))
        } catch {
            return .failure(error)
        }
    }

    /// The algorithm a key verifies with: its own `alg` when accepted and consistent with its
    /// type; otherwise the first accepted algorithm its `kty` (and curve) allows; `nil` when none.
    static func algorithm(of key: JWK, accepted: [String]) -> String? {
        let allowed: [String]
        switch key.keyType.rawValue {
        case "RSA": allowed = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
        case "EC":
            switch key.curve?.rawValue {
            case "P-256": allowed = ["ES256"]
            case "P-384": allowed = ["ES384"]
            case "P-521": allowed = ["ES512"]
            default: allowed = []
            }
        case "OKP": allowed = key.curve?.rawValue == "Ed25519" ? ["EdDSA"] : []
        default: allowed = []
        }
        if let own = key.algorithm?.rawValue {
            return allowed.contains(own) && accepted.contains(own) ? own : nil
        }
        return accepted.first(where: allowed.contains)
    }

    private struct Metadata: Decodable {
        var issuer: String?
        var jwks_uri: String?
    }

    /// Where the JWKS is: configured, or `jwks_uri` from the issuer's metadata (RFC 8414's
    /// path-inserted form first, then OpenID Connect's).
    func discoverJWKSURL() async throws -> URL {
        if let configured = configuration.jwksURL, let url = URL(string: configured) { return url }
        var failures: [String] = []
        for candidate in Self.metadataURLs(issuer: configuration.issuer) {
            do {
                let metadata = try JSONDecoder().decode(Metadata.self, from: try await configuration.fetch(candidate))
                guard let text = metadata.jwks_uri, Self.isSecure(text), let url = URL(string: text) else {
                    failures.append("\(candidate.absoluteString): no usable jwks_uri")
                    continue
                }
                return url
            } catch {
                failures.append("\(candidate.absoluteString): \(error)")
            }
        }
        throw DiscoveryError(
            description: "no JWKS found for \(configuration.issuer) (\(failures.joined(separator: "; ")))")
    }

    static func metadataURLs(issuer: String) -> [URL] {
        let trimmed = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        guard let url = URL(string: trimmed), let scheme = url.scheme, let host = url.host else { return [] }
        let port = url.port.map { ":\($0)" } ?? ""
        let origin = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host)\(port)"
        let path = url.path == "/" ? "" : url.path
        return [
            "\(origin)/.well-known/oauth-authorization-server\(path)", "\(trimmed)/.well-known/openid-configuration",
        ]
        .compactMap(URL.init(string:))
    }

    struct DiscoveryError: Error, CustomStringConvertible {
        var description: String
    }

    /// GET with a 5 s timeout; a status other than 200 is an error.
    ///
    /// A data task with a completion handler, not `data(for:)`: FoundationNetworking cancels
    /// the latter with a `queue.sync` from inside the cancellation handler, which can deadlock
    /// against the same queue finishing the request (seen in the Twilio client's transport). A
    /// caller cancelled meanwhile waits for the answer or the 5 s timeout instead.
    public static let fetchWithURLSession: @Sendable (URL) async throws -> Data = { url in
        var request = URLRequest(url: url, timeoutInterval: 5)
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { continuation in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(throwing: error)
                } else if let data, let response {
                    continuation.resume(returning: (data, response))
                } else {
                    continuation.resume(throwing: URLError(.badServerResponse))
                }
            }.resume()
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
            throw DiscoveryError(description: "HTTP \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
        guard data.count <= 1 << 20 else { throw DiscoveryError(description: "document larger than 1 MiB") }
        return data
    }
}

/// The claims of an access token this server reads; `verify(using:)` accepts any, the checks
/// that matter are ``OAuthResourceServer/check(_:now:)``'s.
struct AccessTokenClaims: JWTPayload {
    var iss: String?
    var sub: String?
    var aud: [String]?
    var exp: Double?
    var nbf: Double?
    var scopes: Set<String>
    /// Every top-level claim whose value is a string (`client_id`, `azp`, a tenant claim).
    var strings: [String: String]

    enum CodingKeys: String, CodingKey { case iss, sub, aud, exp, nbf, scope, scp }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let any = try decoder.container(keyedBy: AnyKey.self)
        var strings: [String: String] = [:]
        for key in any.allKeys {
            if let value = try? any.decode(String.self, forKey: key) { strings[key.stringValue] = value }
        }
        self.strings = strings
        let container = try decoder.container(keyedBy: CodingKeys.self)
        iss = try? container.decodeIfPresent(String.self, forKey: .iss)
        sub = try? container.decodeIfPresent(String.self, forKey: .sub)
        if let single = try? container.decodeIfPresent(String.self, forKey: .aud) {
            aud = [single]
        } else {
            aud = try? container.decodeIfPresent([String].self, forKey: .aud)
        }
        exp = try? container.decodeIfPresent(Double.self, forKey: .exp)
        nbf = try? container.decodeIfPresent(Double.self, forKey: .nbf)
        var scopes = Set<String>()
        if let scope = try? container.decodeIfPresent(String.self, forKey: .scope) {
            scopes.formUnion(scope.split(separator: " ").map(String.init))
        }
        if let list = try? container.decodeIfPresent([String].self, forKey: .scp) {
            scopes.formUnion(list)
        } else if let text = try? container.decodeIfPresent(String.self, forKey: .scp) {
            scopes.formUnion(text.split(separator: " ").map(String.init))
        }
        self.scopes = scopes
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(iss, forKey: .iss)
        try container.encodeIfPresent(sub, forKey: .sub)
        try container.encodeIfPresent(aud, forKey: .aud)
        try container.encodeIfPresent(exp, forKey: .exp)
        try container.encodeIfPresent(nbf, forKey: .nbf)
        try container.encode(scopes.sorted().joined(separator: " "), forKey: .scope)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A JWT's header, read before any key is chosen: its algorithm and key id. Parsing is pure,
/// so the fuzzer reaches it.
public struct TokenHeader: Sendable, Equatable {
    public var algorithm: String
    public var keyID: String?

    /// Why a token is not a JWT this server can read.
    public enum Malformed: Error, Equatable, CustomStringConvertible {
        case notThreeParts, badEncoding, notAnObject, noAlgorithm

        public var description: String {
            switch self {
            case .notThreeParts: return "the bearer token is not a JWT (three dot-separated parts)"
            case .badEncoding: return "the token's header is not base64url-encoded JSON"
            case .notAnObject: return "the token's header is not a JSON object"
            case .noAlgorithm: return "the token's header names no algorithm"
            }
        }
    }

    public static func parse(_ token: String) -> Result<TokenHeader, Malformed> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].utf8.count <= 4096 else { return .failure(.notThreeParts) }
        guard let bytes = Base64.decode(parts[0]) else { return .failure(.badEncoding) }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            return .failure(.notAnObject)
        }
        guard let algorithm = object["alg"] as? String else { return .failure(.noAlgorithm) }
        return .success(TokenHeader(algorithm: algorithm, keyID: object["kid"] as? String))
    }
}
