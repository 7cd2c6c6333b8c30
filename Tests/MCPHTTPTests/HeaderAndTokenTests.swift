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
        .request(
            id: .number(1), method: "tools/call", params: ["name": .string(name), "arguments": [:], "_meta": Self.meta])
    }

    @Test func eachMirroredHeaderMustMatchTheBody() {
        let ok = HeaderRules.mismatch(
            protocolVersion: "2026-07-28", method: "tools/call", name: "getPaymentStatus",
            message: call("getPaymentStatus"))
        #expect(ok == nil)
        let encoded = HeaderRules.mismatch(
            protocolVersion: "2026-07-28", method: "tools/call", name: "=?base64?Z2V0UGF5bWVudFN0YXR1cw==?=",
            message: call("getPaymentStatus"))
        #expect(encoded == nil)
        for (version, method, name) in [
            ("2026-07-28", "tools/list", "getPaymentStatus"), ("2026-07-28", nil, "getPaymentStatus"),
            ("2026-07-28", "tools/call", nil), ("2026-07-28", "tools/call", "other"),
            ("2025-11-25", "tools/call", "getPaymentStatus"),
        ] as [(String, String?, String?)] {
            let error = HeaderRules.mismatch(
                protocolVersion: version, method: method, name: name, message: call("getPaymentStatus"))
            #expect(error?.code == HeaderRules.headerMismatchCode, "\(version) \(method ?? "-") \(name ?? "-")")
        }
        let read = JSONRPCMessage.request(
            id: .number(2), method: "resources/read", params: ["uri": "payment://CA1/PK1/status", "_meta": Self.meta])
        #expect(
            HeaderRules.mismatch(
                protocolVersion: "2026-07-28", method: "resources/read", name: "payment://CA1/PK1/status", message: read
            ) == nil)
        #expect(
            HeaderRules.mismatch(
                protocolVersion: "2026-07-28", method: "resources/read", name: "payment://CA1/PK2/status", message: read
            ) != nil)
        let noMeta = JSONRPCMessage.request(id: .number(3), method: "server/discover", params: [:])
        #expect(
            HeaderRules.mismatch(protocolVersion: "2026-07-28", method: "server/discover", name: nil, message: noMeta)
                != nil)
    }

    /// Read as bytes, not lowercased: every case of the media type, parameters allowed, and no
    /// byte that only equals a letter or "/" once its 0x20 bit is set.
    @Test func aJSONContentTypeIsRecognisedInAnyCase() {
        for accepted in ["application/json", "Application/JSON", "APPLICATION/JSON; charset=utf-8"] {
            #expect(MCPHTTPTransport.isJSON(accepted), "\(accepted)")
        }
        // 0x0F | 0x20 is "/", 0x01 | 0x20 is "!": neither is a letter's other case.
        for refused in ["", "application/jso", "text/json", "application\u{0F}json", "applicatiOn/xml"] {
            #expect(!MCPHTTPTransport.isJSON(refused), "\(refused.debugDescription)")
        }
    }

    /// The status of a response line the engine wrote: its error, not a result that mentions one.
    @Test func theResponseStatusComesFromTheEnginesErrorAlone() {
        func line(_ message: JSONRPCMessage) -> [UInt8] { message.encodedLine() }
        let notFound = line(
            .error(id: .number(1), error: JSONRPCError(code: JSONRPCError.methodNotFoundCode, message: "x")))
        #expect(MCPHTTPTransport.status(ofResponse: notFound, modern: true) == .notFound)
        #expect(MCPHTTPTransport.status(ofResponse: notFound, modern: false) == .ok)
        let parse = line(.error(id: nil, error: .parseError("bad")))
        #expect(MCPHTTPTransport.status(ofResponse: parse, modern: false) == .badRequest)
        let internalError = line(.error(id: .number(2), error: .internalError("boom")))
        #expect(MCPHTTPTransport.status(ofResponse: internalError, modern: true) == .ok)
        // A result whose text (or an object in it) holds an "error" member is a result.
        let mentions = line(
            .result(
                id: .number(3),
                result: [
                    "content": [["type": "text", "text": #"{"error":{"code":-32601}}"#]],
                    "structuredContent": ["error": ["code": .integer(Int64(JSONRPCError.methodNotFoundCode))]],
                ]))
        #expect(MCPHTTPTransport.status(ofResponse: mentions, modern: true) == .ok)
    }
}

/// Static tokens and the bearer header.
@Suite struct StaticTokenTests {
    @Test func onlyConfiguredTokensAreAcceptedAndShortOnesAreNotConfigurable() async throws {
        let tokens = StaticTokenAuthenticator.self
        #expect(throws: StaticTokenAuthenticator.ConfigurationError.tooShort(index: 1)) {
            try tokens.init(tokens: [String(repeating: "a", count: 32), "short"])
        }
        let authenticator = try tokens.init(tokens: [
            String(repeating: "a", count: 32), String(repeating: "b", count: 40),
        ])
        #expect(
            await authenticator.authenticate(token: String(repeating: "b", count: 40))
                == .accepted(Principal(id: StaticToken(token: String(repeating: "b", count: 40)).principalID)))
        guard case .rejected(let reason) = await authenticator.authenticate(token: String(repeating: "b", count: 39))
        else {
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

    @Test func entriesNameTheirHolderTenantAndScopes() async throws {
        let secret = String(repeating: "c", count: 32)
        #expect(try StaticToken.parse(secret).get() == StaticToken(token: secret))
        #expect(try StaticToken.parse("alice:\(secret)").get() == StaticToken(name: "alice", token: secret))
        #expect(
            try StaticToken.parse("ops@acme:\(secret):payments:read payments:operator").get()
                == StaticToken(
                    name: "ops", token: secret, tenant: "acme", scopes: ["payments:read", "payments:operator"]))
        for bad in ["al ice:\(secret)", ":\(secret)", "alice:", "alice:\(secret):", "a@:\(secret)"] {
            guard case .failure(let problem) = StaticToken.parse(bad) else {
                Issue.record("\(bad) must be refused")
                continue
            }
            #expect(!problem.description.contains(secret), "a refusal never quotes the token")
        }
        // The id of an unnamed token is stable, not secret, and not the token.
        let unnamed = StaticToken(token: secret).principalID
        #expect(unnamed.hasPrefix("token:") && unnamed.count == 6 + 12 && !unnamed.contains("cccc"))
        #expect(unnamed == StaticToken(token: secret).principalID)

        let other = String(repeating: "d", count: 32)
        let authenticator = try StaticTokenAuthenticator(
            entries: [
                try StaticToken.parse("alice@acme:\(secret)").get(),
                try StaticToken.parse("ops:\(other):payments:operator").get(),
            ],
            defaultScopes: ["payments:read", "payments:capture"])
        #expect(
            await authenticator.authenticate(token: secret)
                == .accepted(
                    Principal(id: "token:alice", tenant: "acme", scopes: ["payments:read", "payments:capture"])))
        #expect(
            await authenticator.authenticate(token: other)
                == .accepted(Principal(id: "token:ops", scopes: ["payments:operator"])))
        #expect(throws: StaticTokenAuthenticator.ConfigurationError.duplicate(index: 1)) {
            try StaticTokenAuthenticator(entries: [
                StaticToken(name: "a", token: secret), StaticToken(name: "b", token: secret),
            ])
        }
        #expect(throws: StaticTokenAuthenticator.ConfigurationError.duplicate(index: 1)) {
            try StaticTokenAuthenticator(entries: [
                StaticToken(name: "a", token: secret), StaticToken(name: "a", token: other),
            ])
        }
    }
}

/// The OAuth resource server against JWTs this test mints with jwt-kit (ES256), with the issuer's
/// documents served from memory and every fetch counted.
@Suite struct OAuthResourceServerTests {
    struct Claims: JWTPayload {
        var iss: String
        var aud: [String]
        var sub: String? = "agent-1"
        var exp: Double
        var nbf: Double?
        var scope: String?
        var client_id: String?
        var tid: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    final class Issuer: Sendable {
        let url = "https://issuer.test.example"
        let keys = Mutex<[(kid: String, key: ES256PrivateKey)]>([])
        /// Keys published as given (an RSA key without `alg`, say).
        let rawKeys = Mutex<[[String: String]]>([])
        let fetched = Mutex<[String]>([])
        /// While set, every fetch fails as an unreachable issuer would.
        let down = Mutex(false)

        func removeKey(_ kid: String) {
            keys.withLock { $0.removeAll { $0.kid == kid } }
            rawKeys.withLock { $0.removeAll { $0["kid"] == kid } }
        }

        func addKey(_ kid: String) -> ES256PrivateKey {
            let key = ES256PrivateKey()
            keys.withLock { $0.append((kid, key)) }
            return key
        }

        var jwks: Data {
            let entries =
                keys.withLock { $0 }.map { kid, key -> [String: String] in
                    [
                        "kty": "EC", "crv": "P-256", "x": key.parameters!.x, "y": key.parameters!.y, "kid": kid,
                        "alg": "ES256", "use": "sig",
                    ]
                } + rawKeys.withLock { $0 }
            return try! JSONSerialization.data(withJSONObject: ["keys": entries])
        }

        func fetch(_ requested: URL) async throws -> Data {
            fetched.withLock { $0.append(requested.absoluteString) }
            if down.withLock({ $0 }) { throw URLError(.cannotConnectToHost) }
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
    static let agent = Principal(id: "oauth:agent-1", scopes: ["payments"])

    func makeServer(_ issuer: Issuer, scopes: [String] = ["payments"]) throws -> OAuthResourceServer {
        try OAuthResourceServer(
            configuration: .init(
                issuer: issuer.url, audience: Self.audience, requiredScopes: scopes,
                fetch: { try await issuer.fetch($0) }))
    }

    func claims(
        _ issuer: Issuer, aud: String = audience, expiresIn: Double = 300, nbf: Double? = nil,
        scope: String? = "payments"
    ) -> Claims {
        let now = Date().timeIntervalSince1970
        return Claims(iss: issuer.url, aud: [aud], exp: now + expiresIn, nbf: nbf.map { now + $0 }, scope: scope)
    }

    @Test func aGoodTokenIsAcceptedAndEachClaimIsChecked() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        let good = try await issuer.sign(claims(issuer), with: key, kid: "ec-1")
        #expect(await server.authenticate(token: good) == .accepted(Self.agent))
        #expect(
            issuer.fetched.withLock { $0 } == [
                issuer.url + "/.well-known/oauth-authorization-server", issuer.url + "/jwks.json",
            ])

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
        guard
            case .rejected = await server.authenticate(
                token: try await issuer.sign(otherIssuer, with: key, kid: "ec-1"))
        else {
            Issue.record("another issuer must be rejected")
            return
        }
        // Within the leeway (60 s), a just-expired token still passes.
        #expect(
            await server.authenticate(
                token: try await issuer.sign(claims(issuer, expiresIn: -10), with: key, kid: "ec-1"))
                == .accepted(Self.agent))
        #expect(
            await server.authenticate(
                token: try await issuer.sign(claims(issuer, scope: "other"), with: key, kid: "ec-1"))
                == .insufficientScope(required: ["payments"]))
        let forged = try await issuer.sign(claims(issuer), with: ES256PrivateKey(), kid: "ec-1")
        #expect(await server.authenticate(token: forged) == .rejected(reason: "the token's signature is not valid"))
    }

    /// Claims in the shapes issuers send: `exp` may be missing, `scp` a list or a string.
    struct FlexibleClaims: JWTPayload {
        enum Scopes: Codable {
            case list([String])
            case text(String)
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .list(let list): try container.encode(list)
                case .text(let text): try container.encode(text)
                }
            }
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let list = try? container.decode([String].self) {
                    self = .list(list)
                } else {
                    self = .text(try container.decode(String.self))
                }
            }
        }
        var iss: String
        var aud: [String]
        var sub: String? = "agent-1"
        var exp: Double?
        var nbf: Double?
        var scope: String?
        var scp: Scopes?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    func standard(_ issuer: Issuer, scope: String? = "payments") -> FlexibleClaims {
        FlexibleClaims(
            iss: issuer.url, aud: [Self.audience], exp: Date().timeIntervalSince1970 + 300, scope: scope)
    }

    @Test func aTokenWithoutAnExpiryIsRefused() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        var fields = standard(issuer)
        fields.exp = nil
        let collection = JWTKeyCollection()
        await collection.add(ecdsa: key, kid: JWKIdentifier(string: "ec-1"))
        let token = try await collection.sign(fields, kid: JWKIdentifier(string: "ec-1"))
        #expect(await server.authenticate(token: token) == .rejected(reason: "the token has no expiry (exp)"))
    }

    /// The 60 s leeway, each way, at its edge: the claims judged at fixed instants around it.
    @Test func theLeewayEndsAtSixtySecondsEachWay() throws {
        let issuer = Issuer()
        let server = try makeServer(issuer)
        let t = 1_800_000_000.0
        func claims(exp: Double, nbf: Double? = nil) throws -> AccessTokenClaims {
            var fields = standard(issuer)
            fields.exp = exp
            fields.nbf = nbf
            return try JSONDecoder().decode(AccessTokenClaims.self, from: JSONEncoder().encode(fields))
        }
        func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: seconds) }
        #expect(server.check(try claims(exp: t), now: at(t + 59.9)) == .accepted(Self.agent), "just inside")
        #expect(server.check(try claims(exp: t), now: at(t + 60)) == .rejected(reason: "the token has expired"))
        #expect(server.check(try claims(exp: t + 3_600, nbf: t), now: at(t - 60)) == .accepted(Self.agent))
        #expect(
            server.check(try claims(exp: t + 3_600, nbf: t), now: at(t - 60.1))
                == .rejected(reason: "the token is not valid yet (nbf)"), "just outside")
    }

    /// An issuer that cannot be reached: the token is not judged (`unavailable`, which the
    /// endpoint answers 503), never accepted; once it answers, the same token passes.
    @Test func anUnreachableIssuerNeverLetsATokenIn() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        let token = try await issuer.sign(claims(issuer), with: key, kid: "ec-1")
        issuer.down.withLock { $0 = true }
        for _ in 0..<3 {
            guard case .unavailable(let reason) = await server.authenticate(token: token) else {
                Issue.record("an unverified token was judged")
                continue
            }
            #expect(reason.contains("could not be fetched"), "\(reason)")
        }
        issuer.down.withLock { $0 = false }
        // Fetches are rate limited after failures; the token passes once they are allowed again.
        var outcome = await server.authenticate(token: token)
        let deadline = ContinuousClock.now + .seconds(20)
        while outcome != .accepted(Self.agent), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            outcome = await server.authenticate(token: token)
        }
        #expect(outcome == .accepted(Self.agent))
    }

    /// `scp` as a list (Okta, Auth0) and as a space-separated string (Microsoft Entra) carries
    /// the scopes as `scope` does.
    @Test func scopesMayComeAsScp() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        let collection = JWTKeyCollection()
        await collection.add(ecdsa: key, kid: JWKIdentifier(string: "ec-1"))
        for scp: FlexibleClaims.Scopes in [.list(["payments"]), .text("payments")] {
            var fields = standard(issuer, scope: nil)
            fields.scp = scp
            let token = try await collection.sign(fields, kid: JWKIdentifier(string: "ec-1"))
            #expect(await server.authenticate(token: token) == .accepted(Self.agent), "scp \(scp)")
        }
        var fields = standard(issuer, scope: nil)
        fields.scp = .list(["other"])
        let token = try await collection.sign(fields, kid: JWKIdentifier(string: "ec-1"))
        #expect(await server.authenticate(token: token) == .insufficientScope(required: ["payments"]))
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
    }

    /// An RSA key used with PS256 and an Ed25519 key (EdDSA), each published in the JWKS as
    /// issuers do, each verifying its own tokens and not the other's.
    @Test func psAndEdDSAKeysVerifyTheirTokens() async throws {
        let issuer = Issuer()
        let server = try makeServer(issuer)
        let rsa = try Insecure.RSA.PrivateKey(pem: Self.rsaPEM)
        let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
        let ed = try EdDSA.PrivateKey(curve: .ed25519)
        issuer.rawKeys.withLock {
            $0.append([
                "kty": "RSA", "n": Self.base64url(modulus), "e": Self.base64url(exponent), "kid": "rsa-1",
                "alg": "PS256", "use": "sig",
            ])
            $0.append([
                "kty": "OKP", "crv": "Ed25519", "x": Self.base64url(ed.publicKey.rawRepresentation), "kid": "ed-1",
                "alg": "EdDSA", "use": "sig",
            ])
        }
        let fields = standard(issuer)
        let pss = JWTKeyCollection()
        await pss.add(pss: rsa, digestAlgorithm: .sha256, kid: JWKIdentifier(string: "rsa-1"))
        let edwards = JWTKeyCollection()
        await edwards.add(eddsa: ed, kid: JWKIdentifier(string: "ed-1"))
        let psToken = try await pss.sign(fields, kid: JWKIdentifier(string: "rsa-1"))
        let edToken = try await edwards.sign(fields, kid: JWKIdentifier(string: "ed-1"))
        #expect(await server.authenticate(token: psToken) == .accepted(Self.agent), "PS256")
        #expect(await server.authenticate(token: edToken) == .accepted(Self.agent), "EdDSA")
        // Each header's `kid` swapped for the other key's: the signature does not verify.
        let otherEd = try EdDSA.PrivateKey(curve: .ed25519)
        let forged = JWTKeyCollection()
        await forged.add(eddsa: otherEd, kid: JWKIdentifier(string: "ed-1"))
        let forgedToken = try await forged.sign(fields, kid: JWKIdentifier(string: "ed-1"))
        #expect(
            await server.authenticate(token: forgedToken) == .rejected(reason: "the token's signature is not valid"))
    }

    @Test func unsafeAlgorithmsAndMalformedTokensAreRejectedBeforeAnyKeyIsUsed() async throws {
        let issuer = Issuer()
        _ = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        func part(_ object: [String: Any]) -> String {
            try! JSONSerialization.data(withJSONObject: object).base64EncodedString()
                .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                    of: "/", with: "_")
        }
        let body = part([
            "iss": issuer.url, "aud": Self.audience, "exp": Date().timeIntervalSince1970 + 300, "scope": "payments",
        ])
        for alg in ["none", "HS256"] {
            let token = part(["alg": alg, "kid": "ec-1"]) + "." + body + "."
            #expect(
                await server.authenticate(token: token)
                    == .rejected(reason: "tokens signed with \(alg) are not accepted"))
        }
        #expect(
            await server.authenticate(token: "not-a-jwt")
                == .rejected(reason: TokenHeader.Malformed.notThreeParts.description))
        #expect(
            await server.authenticate(token: "!!!.e30.")
                == .rejected(reason: TokenHeader.Malformed.badEncoding.description))
        #expect(issuer.fetched.withLock { $0 }.isEmpty, "nothing was fetched for tokens refused on their header")
    }

    @Test func aRotatedKeyIsFetchedAndUnknownKeysCannotMakeTheServerHammerTheIssuer() async throws {
        let issuer = Issuer()
        let first = issuer.addKey("ec-1")
        let server = try makeServer(issuer)
        #expect(
            await server.authenticate(token: try await issuer.sign(claims(issuer), with: first, kid: "ec-1"))
                == .accepted(Self.agent))
        let rotated = issuer.addKey("ec-2")
        #expect(
            await server.authenticate(token: try await issuer.sign(claims(issuer), with: rotated, kid: "ec-2"))
                == .accepted(Self.agent))
        let jwksFetches = { issuer.fetched.withLock { $0.filter { $0.hasSuffix("/jwks.json") }.count } }
        #expect(jwksFetches() == 2)
        let stranger = ES256PrivateKey()
        for index in 0..<30 {
            let token = try await issuer.sign(claims(issuer), with: stranger, kid: "random-\(index)")
            #expect(
                await server.authenticate(token: token)
                    == .rejected(reason: "the token's key id is not in the issuer's key set"))
        }
        // The first fetch and the refresh after the rotation count: at most ten within the minute.
        #expect(jwksFetches() <= 10, "\(jwksFetches()) fetches")
    }

    /// A throwaway 2048-bit RSA key for these tests only (generated with openssl genrsa).
    static let rsaPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQChi/+SXOlyhF8I
        Ojt3Pc0BPO5HICfukpnN8MTBcKAbs8oHOR8Gk37UAFShjSzY3BJARcR7HUx3VtsK
        8kWVJSI2j7PNjHZyXLEpGCaAlUlEjpanJMMRqTQ1Ws9qdG6oeb1mDfL5rm+e06+Q
        qL4u7fLRnwhAIse23Ygsa5KNsS2XF2t9mzNvfWb2T1olFfOUmgS6eC41dXHlOInK
        Q65uwLq3VF6fIsdtTFy9sRfb5xEltwytZ+VZ+gr3dbQLWJiRjh96dajEFyrSP8O/
        Ji9AoT1ToWyDhluRXnoI4l/UmlP3IKD7FvGHfCOtuw2lHs/eVV/z6nEPabAhuYsv
        aUOo7DQxAgMBAAECggEAF8Q1SlQkUsu0q3eIY3I9JHnRWGIbsyvwOBhm6fU8KOHa
        JBaRlkcWzpu/LQahsBnYZDT0w2QRFDGRXNqTGsPGynN5HBFrz5wMGE6hmM3due9R
        rK9qNMFJmVvjI0yT3HIPR4y1JWngqWOH8xFQQYPnnaf278XuJIdnpEQDNe34wL8z
        b2xDctvS0krQY8QMG2Mwayvq72WTuPFFHSI+pYdWFUiVHxdGj2i/qTB4qmvuMxat
        e5P89pphl40Q9or4Yc3SMPGD/VT5ALqvgd3oGqNvhcWR/r43NPlSAu8Y5QRUNLqC
        Z2j+jeHpfv14xM0gSwfL1bfkGRZdyCOvEUHf4e2z3QKBgQDjUiroAv1R9JdQY82H
        RSbQLegaXPGPs90y2SxwmKsCgHKrjhQHyvLqXPLsyIqmHj1W+PjTx2KOZ8+FOVOv
        NzzDQNfuQC/0gEhuW71t70Dy3GXAbemE6Ug7pPM2L+V6G24dMR07V82EC/UyaCrl
        V6BDt1yWoYhubiLVN15Ksus8RwKBgQC17YLSc8kvxr17EehxbFkKIMXVHTUzHdm9
        mLfW2WwDX7V7CLpFbSQYIZmcXVOIjcsi/he8SFhFc3XqnH5HtHIW5Y2hn3btGWk5
        WmErytWnG2XpsW/3yakS0A6+51OvQB9T78Pm1zEIu+H0RxbhwFAV8GTqcvuwCStX
        F+f3FL5fxwKBgQDQL0xEN5iwGgUKBp0QKXCmb6SFoGFKbjtCekqMxAS5wdFC9Fe7
        204k/QMtf2wbPs6GfHXF3nCQYtpW9G2Dpl7rotMey4IfteyfxTzzFY6x3M8DMKYQ
        p2UT2rkzAyJydfSen4BZ/MunBxyEEYpXh6yq157gBQfhutQD2TVty/ZLuQKBgAzB
        aWG+EoYSBikB2W1Sbm/CWnyVvqwl1KVxdrpOpj8aT8wfkYfaniQ+/tkyxe+WGX8L
        l7hwzheYf9UCQexfH3yxfZuuZZU8Kd+GkbeTUiWUSzH2aeZSslMKWW5TI8/uzAOD
        lRWzUtHM8ovBDD6p0DOpljnF9BWknvBNUctGHg7zAoGBAJj2T0h864umV1qvB7vq
        dH5/XY5wrgnCcb/r8RIhua0vNn0+O3+eeIcbYfnzSkGwzDLWye5liPZBtAmXnwAV
        prMMIoBBhLKtSTQ4RAgkaQHKTaEsvwm9rStS0LttjTxiuSNFpHkKurlT3dJK3r3d
        vZh+Q35spk2mVT/FCIWYDTgI
        -----END PRIVATE KEY-----
        """

    @Test func aKeyWithoutAlgIsPinnedByItsTypeNotByTheFirstTokenThatNamesIt() async throws {
        let issuer = Issuer()
        let rsa = try Insecure.RSA.PrivateKey(pem: Self.rsaPEM)
        let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
        func base64url(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
        }
        // As Entra ID publishes them: no alg.
        issuer.rawKeys.withLock {
            $0.append(["kty": "RSA", "kid": "rsa-1", "use": "sig", "n": base64url(modulus), "e": base64url(exponent)])
        }
        let server = try makeServer(issuer)
        // A garbage token that names the real kid and PS256 comes first…
        func part(_ object: [String: Any]) -> String { base64url(try! JSONSerialization.data(withJSONObject: object)) }
        let garbage =
            part(["alg": "PS256", "kid": "rsa-1", "typ": "JWT"]) + "."
            + part([
                "iss": issuer.url, "aud": Self.audience, "exp": Date().timeIntervalSince1970 + 300, "sub": "mallory",
                "scope": "payments",
            ])
            + "." + base64url(Data(repeating: 7, count: 256))
        guard case .rejected(let reason) = await server.authenticate(token: garbage) else {
            Issue.record("a PS256 token for an RSA key pinned to RS256 must be rejected")
            return
        }
        #expect(reason.contains("RS256"), "\(reason)")
        // …and every genuine RS256 token is still accepted.
        let signer = JWTKeyCollection()
        await signer.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
        for _ in 0..<2 {
            let genuine = try await signer.sign(claims(issuer), kid: "rsa-1")
            #expect(await server.authenticate(token: genuine) == .accepted(Self.agent))
        }
        // Configured for PS256 only, the same RSA key verifies PS256 and nothing else.
        let pss = try OAuthResourceServer(
            configuration: .init(
                issuer: issuer.url, audience: Self.audience, requiredScopes: ["payments"],
                algorithms: ["PS256"], fetch: { try await issuer.fetch($0) }))
        guard case .rejected = await pss.authenticate(token: try await signer.sign(claims(issuer), kid: "rsa-1")) else {
            Issue.record("RS256 is not among the configured algorithms")
            return
        }
        let pssSigner = JWTKeyCollection()
        await pssSigner.add(pss: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
        #expect(
            await pss.authenticate(token: try await pssSigner.sign(claims(issuer), kid: "rsa-1"))
                == .accepted(Self.agent))
    }

    @Test func keysExpireSoAWithdrawnKeyStopsVerifyingAndFetchesAreBoundedBeforeTheFirstLoad() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try OAuthResourceServer(
            configuration: .init(
                issuer: issuer.url, audience: Self.audience, requiredScopes: ["payments"],
                keyLifetime: .seconds(3), fetch: { try await issuer.fetch($0) }))
        let token = try await issuer.sign(claims(issuer), with: key, kid: "ec-1")
        #expect(await server.authenticate(token: token) == .accepted(Self.agent))
        issuer.removeKey("ec-1")
        // Three seconds, not one: a whole suite on two busy cores once took a second between these two lines.
        #expect(await server.authenticate(token: token) == .accepted(Self.agent), "still within the key lifetime")
        try await Task.sleep(for: .milliseconds(3100))
        #expect(
            await server.authenticate(token: token)
                == .rejected(reason: "the token's key id is not in the issuer's key set"),
            "the withdrawn key stops verifying once the cached set expires")

        // An issuer that is down from the start: tokens do not make the server hammer it.
        let unreachable = Issuer()
        unreachable.down.withLock { $0 = true }
        let waiting = try makeServer(unreachable)
        for _ in 0..<30 {
            guard case .unavailable = await waiting.authenticate(token: token) else {
                Issue.record("an unverifiable token is never let in")
                return
            }
        }
        #expect(
            unreachable.fetched.withLock { $0.count } <= 10 * 2, "at most ten attempts a minute (two documents each)")
    }

    @Test func thePrincipalIsTheSubjectElseTheClientAndItsTenantComesFromTheConfiguredClaim() async throws {
        let issuer = Issuer()
        let key = issuer.addKey("ec-1")
        let server = try OAuthResourceServer(
            configuration: .init(
                issuer: issuer.url, audience: Self.audience, requiredScopes: ["payments"],
                tenantClaim: "tid", fetch: { try await issuer.fetch($0) }))
        var machine = claims(issuer, scope: "payments payments:read")
        machine.sub = nil
        machine.client_id = "voice-app"
        machine.tid = "acme"
        #expect(
            await server.authenticate(token: try await issuer.sign(machine, with: key, kid: "ec-1"))
                == .accepted(
                    Principal(id: "oauth-client:voice-app", tenant: "acme", scopes: ["payments", "payments:read"])))
        var nobody = claims(issuer)
        nobody.sub = nil
        #expect(
            await server.authenticate(token: try await issuer.sign(nobody, with: key, kid: "ec-1"))
                == .rejected(reason: "the token names no subject (sub, client_id or azp)"))
    }

    @Test func insecureIssuersAreRefusedButLoopbackIsAllowed() throws {
        #expect(throws: OAuthResourceServer.ConfigurationError.self) {
            try OAuthResourceServer(configuration: .init(issuer: "http://issuer.example", audience: Self.audience))
        }
        _ = try OAuthResourceServer(configuration: .init(issuer: "http://127.0.0.1:9999", audience: Self.audience))
        #expect(
            OAuthResourceServer.metadataURLs(issuer: "https://id.example/tenant/1").map(\.absoluteString) == [
                "https://id.example/.well-known/oauth-authorization-server/tenant/1",
                "https://id.example/tenant/1/.well-known/openid-configuration",
            ])
    }
}
