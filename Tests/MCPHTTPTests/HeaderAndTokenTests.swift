import Foundation
import JWTKit
import MCPCore
import Synchronization
import Testing
@testable import MCPHTTP

/// The header rules of 2026-07-28: the Base64 sentinel, and each header checked against the body.
@Suite struct HeaderRulesTests {
    @Test func theBase64SentinelIsDecodedAndMalformedValuesAreRefused() {
        #expect(HeaderRules.decodedValue("getPaymentStatus") == "getPaymentStatus")
        #expect(HeaderRules.decodedValue("=?base64?SGVsbG8sIOS4lueVjA==?=") == "Hello, 世界")
        #expect(HeaderRules.decodedValue("=?base64?IHBhZGRlZCA=?=") == " padded ")
        #expect(HeaderRules.decodedValue("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=") == "=?base64?literal?=")
        #expect(HeaderRules.decodedValue("=?base64?not base64!?=") == nil)
        #expect(HeaderRules.decodedValue("=?base64?/w==?=") == nil, "0xFF is not UTF-8")
        #expect(HeaderRules.decodedValue("line\u{1}feed") == nil)
        #expect(HeaderRules.decodedValue("caf\u{e9}") == nil, "non-ASCII must come Base64-encoded")
        #expect(HeaderRules.decodedValue("=?base64?QQ?=") == "A", "padding is optional")
        #expect(HeaderRules.decodedValue("=?base64?Q?=") == nil, "a lone sextet is not a byte")
    }

    static let meta: JSONValue = [MetaKey.protocolVersion: "2026-07-28", MetaKey.clientCapabilities: [:]]

    func call(_ name: String) -> JSONRPCMessage {
        .request(id: .number(1), method: "tools/call", params: ["name": .string(name), "arguments": [:], "_meta": Self.meta])
    }

    @Test func eachMirroredHeaderMustMatchTheBody() {
        let ok = HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "tools/call", name: "getPaymentStatus", message: call("getPaymentStatus"))
        #expect(ok == nil)
        let encoded = HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "tools/call", name: "=?base64?Z2V0UGF5bWVudFN0YXR1cw==?=",
                                           message: call("getPaymentStatus"))
        #expect(encoded == nil)
        for (version, method, name) in [("2026-07-28", "tools/list", "getPaymentStatus"), ("2026-07-28", nil, "getPaymentStatus"),
                                        ("2026-07-28", "tools/call", nil), ("2026-07-28", "tools/call", "other"),
                                        ("2025-11-25", "tools/call", "getPaymentStatus")] as [(String, String?, String?)] {
            let error = HeaderRules.mismatch(protocolVersion: version, method: method, name: name, message: call("getPaymentStatus"))
            #expect(error?.code == HeaderRules.headerMismatchCode, "\(version) \(method ?? "-") \(name ?? "-")")
        }
        let read = JSONRPCMessage.request(id: .number(2), method: "resources/read", params: ["uri": "payment://CA1/PK1/status", "_meta": Self.meta])
        #expect(HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "resources/read", name: "payment://CA1/PK1/status", message: read) == nil)
        #expect(HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "resources/read", name: "payment://CA1/PK2/status", message: read) != nil)
        let noMeta = JSONRPCMessage.request(id: .number(3), method: "server/discover", params: [:])
        #expect(HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "server/discover", name: nil, message: noMeta) != nil)
    }
}

/// Static tokens and the bearer header.
@Suite struct StaticTokenTests {
    @Test func onlyConfiguredTokensAreAcceptedAndShortOnesAreNotConfigurable() async throws {
        let tokens = StaticTokenAuthenticator.self
        #expect(throws: StaticTokenAuthenticator.ConfigurationError.tooShort(index: 1)) {
            try tokens.init(tokens: [String(repeating: "a", count: 32), "short"])
        }
        let authenticator = try tokens.init(tokens: [String(repeating: "a", count: 32), String(repeating: "b", count: 40)])
        #expect(await authenticator.authenticate(token: String(repeating: "b", count: 40)) == .accepted(principal: "token-2"))
        guard case .rejected(let reason) = await authenticator.authenticate(token: String(repeating: "b", count: 39)) else {
            Issue.record("a near miss must be rejected")
            return
        }
        #expect(!reason.contains("bbbb"), "a refusal never repeats the token")
        #expect(bearerToken(fromAuthorization: "Bearer abc.def-ghi_~+/=") == "abc.def-ghi_~+/=")
        #expect(bearerToken(fromAuthorization: "bearer xyz") == "xyz")
        #expect(bearerToken(fromAuthorization: "Basic xyz") == nil)
        #expect(bearerToken(fromAuthorization: "Bearer  xyz") == nil)
        #expect(bearerToken(fromAuthorization: "Bearer x\"y") == nil)
    }
}

/// The OAuth resource server against JWTs this test mints with jwt-kit (ES256), with the issuer's
/// documents served from memory and every fetch counted.
@Suite struct OAuthResourceServerTests {
    struct Claims: JWTPayload {
        var iss: String
        var aud: [String]
        var sub = "agent-1"
        var exp: Double
        var nbf: Double?
        var scope: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    final class Issuer: Sendable {
        let url = "https://issuer.test.example"
        let keys = Mutex<[(kid: String, key: ES256PrivateKey)]>([])
        let fetched = Mutex<[String]>([])

        func addKey(_ kid: String) -> ES256PrivateKey {
            let key = ES256PrivateKey()
            keys.withLock { $0.append((kid, key)) }
            return key
        }

        var jwks: Data {
            let entries = keys.withLock { $0 }.map { kid, key -> [String: String] in
                ["kty": "EC", "crv": "P-256", "x": key.parameters!.x, "y": key.parameters!.y, "kid": kid, "alg": "ES256", "use": "sig"]
            }
            return try! JSONSerialization.data(withJSONObject: ["keys": entries])
        }

        func fetch(_ requested: URL) async throws -> Data {
            fetched.withLock { $0.append(requested.absoluteString) }
            switch requested.absoluteString {
            case url + "/.well-known/oauth-authorization-server":
                return try JSONSerialization.data(withJSONObject: ["issuer": url, "jwks_uri": url + "/jwks.json"])
            case url + "/jwks.json":
                return jwks
            default:
                throw URLError(.fileDoesNotExist)
            }
        }

        func sign(_ claims: Claims, with key: ES256PrivateKey, kid: String) async throws -> String {
            let collection = JWTKeyCollection()
            await collection.add(ecdsa: key, kid: JWKIdentifier(string: kid))
            return try await collection.sign(claims, kid: JWKIdentifier(string: kid))
        }
    }

    static let audience = "https://payments.test.example/mcp"

    func makeServer(_ issuer: Issuer, scopes: [String] = ["payments"]) throws -> OAuthResourceServer {
        try OAuthResourceServer(configuration: .init(issuer: issuer.url, audience: Self.audience, requiredScopes: scopes,
                                                     fetch: { try await issuer.fetch($0) }))
    }

    func claims(_ issuer: Issuer, aud: String = audience, expiresIn: Double = 300, nbf: Double? = nil, scope: String? = "payments") -> Claims {
        let now = Date().timeIntervalSince1970
        return Claims(iss: issuer.url, aud: [aud], exp: now + expiresIn, nbf: nbf.map { now + $0 }, scope: scope)
    }

    @Test func aGoodTokenIsAcceptedAndEachClaimIsChecked() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        let good = try await issuer.sign(claims(issuer), with: key, kid: "ec-1")
        #expect(await server.authenticate(token: good) == .accepted(principal: "sub:agent-1"))
        #expect(issuer.fetched.withLock { $0 } == [issuer.url + "/.well-known/oauth-authorization-server", issuer.url + "/jwks.json"])

        for (label, bad) in [
            ("audience", claims(issuer, aud: "https://elsewhere.example/mcp")),
            ("expired", claims(issuer, expiresIn: -600)),
            ("not yet valid", claims(issuer, nbf: 600)),
        ] {
            let token = try await issuer.sign(bad, with: key, kid: "ec-1")
            guard case .rejected = await server.authenticate(token: token) else {
                Issue.record("\(label): must be rejected")
                continue
            }
        }
        var otherIssuer = claims(issuer)
        otherIssuer.iss = "https://evil.example"
        guard case .rejected = await server.authenticate(token: try await issuer.sign(otherIssuer, with: key, kid: "ec-1")) else {
            Issue.record("another issuer must be rejected")
            return
        }
        // Within the leeway (60 s), a just-expired token still passes.
        #expect(await server.authenticate(token: try await issuer.sign(claims(issuer, expiresIn: -10), with: key, kid: "ec-1"))
                == .accepted(principal: "sub:agent-1"))
        #expect(await server.authenticate(token: try await issuer.sign(claims(issuer, scope: "other"), with: key, kid: "ec-1"))
                == .insufficientScope(required: ["payments"]))
        let forged = try await issuer.sign(claims(issuer), with: ES256PrivateKey(), kid: "ec-1")
        #expect(await server.authenticate(token: forged) == .rejected(reason: "the token's signature is not valid"))
    }

    @Test func unsafeAlgorithmsAndMalformedTokensAreRejectedBeforeAnyKeyIsUsed() async throws {
        let issuer = Issuer()
        _ = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        func part(_ object: [String: Any]) -> String {
            try! JSONSerialization.data(withJSONObject: object).base64EncodedString()
                .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        }
        let body = part(["iss": issuer.url, "aud": Self.audience, "exp": Date().timeIntervalSince1970 + 300, "scope": "payments"])
        for alg in ["none", "HS256"] {
            let token = part(["alg": alg, "kid": "ec-1"]) + "." + body + "."
            #expect(await server.authenticate(token: token) == .rejected(reason: "tokens signed with \(alg) are not accepted"))
        }
        #expect(await server.authenticate(token: "not-a-jwt") == .rejected(reason: TokenHeader.Malformed.notThreeParts.description))
        #expect(await server.authenticate(token: "!!!.e30.") == .rejected(reason: TokenHeader.Malformed.badEncoding.description))
        #expect(issuer.fetched.withLock { $0 }.isEmpty, "nothing was fetched for tokens refused on their header")
    }

    @Test func aRotatedKeyIsFetchedAndUnknownKeysCannotMakeTheServerHammerTheIssuer() async throws {
        let issuer = Issuer()
        let first = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        #expect(await server.authenticate(token: try await issuer.sign(claims(issuer), with: first, kid: "ec-1")) == .accepted(principal: "sub:agent-1"))
        let rotated = issuer.addKey("ec-2")
        #expect(await server.authenticate(token: try await issuer.sign(claims(issuer), with: rotated, kid: "ec-2")) == .accepted(principal: "sub:agent-1"))
        let jwksFetches = { issuer.fetched.withLock { $0.filter { $0.hasSuffix("/jwks.json") }.count } }
        #expect(jwksFetches() == 2)
        let stranger = ES256PrivateKey()
        for index in 0..<30 {
            let token = try await issuer.sign(claims(issuer), with: stranger, kid: "random-\(index)")
            #expect(await server.authenticate(token: token) == .rejected(reason: "the token's key id is not in the issuer's key set"))
        }
        // The refresh after the rotation, then at most nine more within the minute.
        #expect(jwksFetches() <= 2 + 9, "\(jwksFetches()) fetches")
    }

    @Test func insecureIssuersAreRefusedButLoopbackIsAllowed() throws {
        #expect(throws: OAuthResourceServer.ConfigurationError.self) {
            try OAuthResourceServer(configuration: .init(issuer: "http://issuer.example", audience: Self.audience))
        }
        _ = try OAuthResourceServer(configuration: .init(issuer: "http://127.0.0.1:9999", audience: Self.audience))
        #expect(OAuthResourceServer.metadataURLs(issuer: "https://id.example/tenant/1").map(\.absoluteString) == [
            "https://id.example/.well-known/oauth-authorization-server/tenant/1", "https://id.example/tenant/1/.well-known/openid-configuration",
        ])
    }
}
