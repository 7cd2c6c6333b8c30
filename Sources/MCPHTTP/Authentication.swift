import Crypto
import Foundation
public import MCPCore

/// Decides whether a bearer token lets its holder use the MCP endpoint.
public protocol BearerAuthenticator: Sendable {
    /// Judges one token (the text after `Bearer `). Never logs it.
    func authenticate(token: String) async -> AuthenticationOutcome
}

/// What an authenticator says of a token.
public enum AuthenticationOutcome: Sendable, Equatable {
    /// The token is good; the principal is its holder: a stable, non-secret id (never the
    /// token), its tenant and its scopes.
    case accepted(Principal)
    /// The token is not one this server takes (unknown, expired, badly signed…): `401`.
    /// `reason` is for the server's log and the `error_description`; it never repeats the token.
    case rejected(reason: String)
    /// The token is good but lacks scopes this endpoint needs: `403 insufficient_scope`.
    case insufficientScope(required: [String])
    /// The token cannot be judged now (the issuer's keys cannot be fetched): `503`, try again.
    case unavailable(reason: String)
}

/// One configured static token: who holds it, its tenant and its scopes.
///
/// An entry is written `TOKEN`, `NAME:TOKEN` or `NAME:TOKEN:SCOPE SCOPE…`, where NAME may carry
/// a tenant as `NAME@TENANT` (tokens are token68 text and hold no colon). A named token's
/// principal is `token:NAME`; an unnamed one's is `token:` and the first 12 hex digits of the
/// token's SHA-256, stable and not secret.
public struct StaticToken: Sendable, Equatable {
    /// The holder's name, if the entry gave one.
    public var name: String?
    public var token: String
    public var tenant: String?
    /// The scopes the entry grants; `nil` takes the authenticator's default.
    public var scopes: Set<String>?

    public init(name: String? = nil, token: String, tenant: String? = nil, scopes: Set<String>? = nil) {
        self.name = name
        self.token = token
        self.tenant = tenant
        self.scopes = scopes
    }

    /// The principal id this token stands for.
    public var principalID: String {
        if let name { return "token:" + name }
        let digest = SHA256.hash(data: Array(token.utf8))
        let hex = Array("0123456789abcdef")
        var id = "token:"
        for byte in digest.prefix(6) {
            id.append(hex[Int(byte >> 4)])
            id.append(hex[Int(byte & 0x0f)])
        }
        return id
    }

    /// Reads one entry; `nil` with the reason when it is malformed (the reason never quotes the
    /// token).
    public static func parse(_ entry: String) -> Result<StaticToken, StaticTokenAuthenticator.ConfigurationError> {
        let trimmed = entry.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1 { return .success(StaticToken(token: trimmed)) }
        guard !parts.contains(where: { $0.isEmpty }) else { return .failure(.malformed("an empty part")) }
        let holder = parts[0].split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard holder.allSatisfy(isName) else {
            return .failure(.malformed("a name (or tenant) other than letters, digits, '-', '.' and '_'"))
        }
        var scopes: Set<String>?
        if parts.count == 3 {
            let listed = parts[2].split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            guard !listed.isEmpty else { return .failure(.malformed("an empty scope list")) }
            scopes = Set(listed)
        }
        return .success(
            StaticToken(name: holder[0], token: parts[1], tenant: holder.count > 1 ? holder[1] : nil, scopes: scopes))
    }

    /// Letters, digits, `-`, `.` and `_`, at least one.
    static func isName(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII
                    && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                        || "-._".unicodeScalars.contains(scalar))
            }
    }
}

/// A fixed set of long random tokens (`AGENT_PAYMENTS_HTTP_TOKENS`, `--http-tokens-file`),
/// compared in constant time: each presented token is hashed and the digest compared with
/// every configured token's digest, so neither a token's content nor its length shows in the
/// time taken. Each token names its holder (``StaticToken``).
public struct StaticTokenAuthenticator: BearerAuthenticator {
    /// The shortest token accepted in a configuration.
    public static let minimumLength = 16

    private let digests: [[UInt8]]
    private let principals: [Principal]

    /// Why a token list cannot be used. Never quotes a token.
    public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
        case tooShort(index: Int)
        case empty
        case malformed(String)
        case entry(index: Int, problem: String)
        case duplicate(index: Int)

        public var description: String {
            switch self {
            case .tooShort(let index):
                return
                    "bearer token \(index + 1) is shorter than \(StaticTokenAuthenticator.minimumLength) characters; use long random tokens (openssl rand -hex 32)"
            case .empty:
                return "no bearer tokens were given"
            case .malformed(let problem):
                return "a token entry has \(problem); write TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE"
            case .entry(let index, let problem):
                return
                    "bearer token entry \(index + 1) has \(problem); write TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE"
            case .duplicate(let index):
                return
                    "bearer token entry \(index + 1) repeats another entry's token or name; each holder needs a token and name of its own"
            }
        }
    }

    /// Tokens without names or scopes: each unrestricted (`scopes: nil`) unless `defaultScopes`.
    public init(tokens: [String], defaultScopes: Set<String>? = nil) throws(ConfigurationError) {
        try self.init(entries: tokens.map { StaticToken(token: $0) }, defaultScopes: defaultScopes)
    }

    /// `entries`, each with its holder; an entry without scopes gets `defaultScopes` (`nil`:
    /// every scope).
    public init(entries: [StaticToken], defaultScopes: Set<String>? = nil) throws(ConfigurationError) {
        guard !entries.isEmpty else { throw .empty }
        var seenTokens: Set<String> = [], seenIDs: Set<String> = []
        for (index, entry) in entries.enumerated() {
            if entry.token.utf8.count < Self.minimumLength { throw .tooShort(index: index) }
            guard bearerToken(fromAuthorization: "Bearer " + entry.token) == entry.token else {
                throw .entry(index: index, problem: "a token with characters a bearer token cannot carry")
            }
            guard seenTokens.insert(entry.token).inserted, seenIDs.insert(entry.principalID).inserted else {
                throw .duplicate(index: index)
            }
        }
        digests = entries.map { Array(SHA256.hash(data: Array($0.token.utf8))) }
        principals = entries.map {
            Principal(id: $0.principalID, tenant: $0.tenant, scopes: $0.scopes ?? defaultScopes)
        }
    }

    public func authenticate(token: String) async -> AuthenticationOutcome {
        let presented = Array(SHA256.hash(data: Array(token.utf8)))
        var match = -1
        for (index, digest) in digests.enumerated() {
            var difference: UInt8 = 0
            for offset in 0..<digest.count { difference |= digest[offset] ^ presented[offset] }
            // No early exit: every configured token is compared.
            if difference == 0 && match < 0 { match = index }
        }
        guard match >= 0 else { return .rejected(reason: "the bearer token is not one of the configured tokens") }
        return .accepted(principals[match])
    }
}

/// Tries each authenticator in turn: the first that accepts wins; otherwise the most specific
/// refusal (insufficient scope, then unavailable, then a plain rejection).
public struct AnyOfAuthenticators: BearerAuthenticator {
    public let authenticators: [any BearerAuthenticator]

    public init(_ authenticators: [any BearerAuthenticator]) {
        self.authenticators = authenticators
    }

    public func authenticate(token: String) async -> AuthenticationOutcome {
        var refusal = AuthenticationOutcome.rejected(reason: "no authenticator is configured")
        for authenticator in authenticators {
            let outcome = await authenticator.authenticate(token: token)
            switch outcome {
            case .accepted: return outcome
            case .insufficientScope: refusal = outcome
            case .unavailable:
                if case .insufficientScope = refusal { continue }
                refusal = outcome
            case .rejected:
                if case .rejected = refusal { refusal = outcome }
            }
        }
        return refusal
    }
}

/// The token in an `Authorization` header value, if it is a well-formed bearer credential
/// (RFC 6750: `Bearer` in any case, one space, token68 characters).
public func bearerToken(fromAuthorization value: String) -> String? {
    let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
    let token = parts[1]
    let allowed = token.utf8.allSatisfy { byte in
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "-._~+/=".utf8.contains(byte)
    }
    guard !token.isEmpty, allowed else { return nil }
    return String(token)
}
