import Crypto

/// Decides whether a bearer token lets its holder use the MCP endpoint.
public protocol BearerAuthenticator: Sendable {
    /// Judges one token (the text after `Bearer `). Never logs it.
    func authenticate(token: String) async -> AuthenticationOutcome
}

/// What an authenticator says of a token.
public enum AuthenticationOutcome: Sendable, Equatable {
    /// The token is good; `principal` names its holder for per-client limits and logs (never the
    /// token itself).
    case accepted(principal: String)
    /// The token is not one this server takes (unknown, expired, badly signed…): `401`.
    /// `reason` is for the server's log and the `error_description`; it never repeats the token.
    case rejected(reason: String)
    /// The token is good but lacks scopes this endpoint needs: `403 insufficient_scope`.
    case insufficientScope(required: [String])
    /// The token cannot be judged now (the issuer's keys cannot be fetched): `503`, try again.
    case unavailable(reason: String)
}

/// A fixed set of long random tokens (`AGENT_PAYMENTS_HTTP_TOKENS`, `--http-tokens-file`),
/// compared in constant time: each presented token is hashed and the digest compared with
/// every configured token's digest, so neither a token's content nor its length shows in the
/// time taken.
public struct StaticTokenAuthenticator: BearerAuthenticator {
    /// The shortest token accepted in a configuration.
    public static let minimumLength = 16

    private let digests: [[UInt8]]

    /// Why a token list cannot be used.
    public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
        case tooShort(index: Int)
        case empty

        public var description: String {
            switch self {
            case .tooShort(let index):
                return "bearer token \(index + 1) is shorter than \(StaticTokenAuthenticator.minimumLength) characters; use long random tokens (openssl rand -hex 32)"
            case .empty:
                return "no bearer tokens were given"
            }
        }
    }

    public init(tokens: [String]) throws(ConfigurationError) {
        guard !tokens.isEmpty else { throw .empty }
        for (index, token) in tokens.enumerated() where token.utf8.count < Self.minimumLength {
            throw .tooShort(index: index)
        }
        digests = tokens.map { Array(SHA256.hash(data: Array($0.utf8))) }
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
        return .accepted(principal: "token-\(match + 1)")
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
