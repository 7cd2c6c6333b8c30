import Foundation
import MCPCore
import MCPHTTP
@_spi(StorageReference) import PaymentFlow
import TwilioPayments

/// What the fuzzers feed with hostile bytes: everything that parses input from outside. Each
/// target must return for every input, and checks what must hold (a round trip, a session that
/// stays consistent) with `precondition`, so a violation is a crash the fuzzer keeps.
/// `scripts/fuzz` runs them under libFuzzer; `FuzzRegressionTests` replays the kept inputs.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// MCPCore's JSON parser; what parses is serialized and must parse back to the same value.
    case json
    /// A JSON-RPC line through the server engine: decoding, era admission, method dispatch.
    case engine
    /// A status-callback body: form decoding, the callback parser, and the payment reducer.
    case callback
    /// The Streamable HTTP header rules: `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`
    /// (with its Base64 sentinel) checked against a body, the bearer header, the status of a
    /// response line. Input: three header lines, then the body.
    case httpHeaders = "http-headers"
    /// The JWT path of the OAuth resource server: the header read before any key is chosen,
    /// then verification against a fixed ES256 key set. Nothing the fuzzer makes may be accepted.
    case jwt
    /// A stored payment session (`jsonb` as PostgreSQL gives it back): the storage format's own
    /// reader must read exactly what `JSONDecoder` reads — the same session, or a refusal where
    /// it refuses — and what reads must write and read back unchanged.
    case storage

    /// Runs one input from async code (the regression tests): the JWT target awaits the
    /// verification instead of blocking a thread of the cooperative pool on it.
    public func run(bytes: [UInt8]) async {
        if case .jwt = self {
            Self.check(await Self.resourceServer.authenticate(token: String(decoding: bytes, as: UTF8.self)))
            return
        }
        bytes.withUnsafeBytes { run($0) }
    }

    /// Runs one input (libFuzzer's callback, on a thread of its own).
    public func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .json: Self.json(bytes)
        case .engine: Self.engine(bytes)
        case .callback: Self.callback(bytes)
        case .httpHeaders: Self.httpHeaders(bytes)
        case .jwt: Self.jwt(bytes)
        case .storage: Self.storage(bytes)
        }
    }

    static func json(_ bytes: UnsafeRawBufferPointer) {
        guard let value = try? JSONValue(parsing: Array(bytes)) else { return }
        let text = value.serialized()
        guard let again = try? JSONValue(parsing: Array(text.utf8)) else {
            preconditionFailure("serialized JSON does not parse back: \(text.prefix(200))")
        }
        precondition(
            again == value || Self.containsDoubles(value), "JSON round trip changed the value: \(text.prefix(200))")
    }

    /// A double may print shorter than it parsed and differ in the last place; nothing else may.
    private static func containsDoubles(_ value: JSONValue) -> Bool {
        switch value {
        case .double: return true
        case .array(let items): return items.contains(where: containsDoubles)
        case .object(let members): return members.values.contains(where: containsDoubles)
        default: return false
        }
    }

    /// One engine, shared by every input, with a tool, a resource template and a prompt so
    /// that dispatch reaches every kind of handler.
    static let server: MCPServer = {
        let server = MCPServer(info: Implementation(name: "fuzz", version: "0"))
        server.register(
            Tool(
                name: "echo", description: "echo",
                inputSchema: [
                    "type": "object",
                    "properties": ["text": ["type": "string", "pattern": "^[a-z]*$", "maxLength": 64]],
                    "additionalProperties": false,
                ]
            ) { call in ToolResult(text: call.arguments["text"]?.stringValue ?? "") })
        return server
    }()

    struct Discard: MessageSink {
        func send(_ line: [UInt8]) {}
    }

    static func engine(_ bytes: UnsafeRawBufferPointer) {
        let connection = server.connect(sink: Discard())
        // A first message and a second on the same connection: era rules depend on what came before.
        connection.receive(bytes)
        connection.receive(bytes)
        connection.close()
    }

    static func callback(_ bytes: UnsafeRawBufferPointer) {
        guard let body = String(validating: bytes, as: UTF8.self), let fields = FormEncoding.decode(body) else {
            return
        }
        let callback = PaymentStatusCallback(fields: fields)
        _ = callback.unrecognizedValues
        let date = Date(timeIntervalSince1970: 1_800_000_000)
        let sid = PaymentSID(validated: "PK" + String(repeating: "a", count: 32))
        let fresh = PaymentSession(
            callSID: CallSID(validated: "CA" + String(repeating: "b", count: 32)),
            configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "1.00", postalCode: true)),
            at: date)
        var session = PaymentReducer.reduce(fresh, .sessionCreated(sid, at: date)).session
        for item in [PaymentItem.cardNumber, .securityCode] {
            session = PaymentReducer.reduce(session, .captureRequested(item, at: date, idempotencyKey: "k")).session
            let after = PaymentReducer.reduce(session, .callbackReceived(callback, at: date.addingTimeInterval(1)))
                .session
            precondition(after.version >= session.version, "a callback moved the session's version backwards")
            precondition(!(session.phase.isFinished && after != session), "a callback changed a finished session")
            _ = after.nextStep
            session = after
        }
    }

    static func httpHeaders(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\n", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        while lines.count < 4 { lines.append("") }
        let (version, method, name, body) = (lines[0], lines[1], lines[2], lines[3])
        for header in [version, method, name] {
            guard let decoded = HeaderRules.decodedValue(header) else { continue }
            precondition(
                HeaderRules.isPlainFieldValue(header),
                "a header with characters outside the field-value set was accepted")
            if !(header.hasPrefix("=?base64?") && header.hasSuffix("?=") && header.utf8.count >= 11) {
                precondition(decoded == header, "a plain header value changed in decoding")
            } else {
                // What decodes must re-encode to something that decodes the same.
                let again = HeaderRules.decodedValue("=?base64?" + Data(decoded.utf8).base64EncodedString() + "?=")
                precondition(again == decoded, "the Base64 sentinel does not round-trip")
            }
        }
        _ = bearerToken(fromAuthorization: name)
        guard case .success(let message) = JSONRPCMessage.decode(Array(body.utf8)) else { return }
        if let error = HeaderRules.mismatch(
            protocolVersion: version, method: method.isEmpty ? nil : method,
            name: name.isEmpty ? nil : name, message: message)
        {
            precondition(error.code == HeaderRules.headerMismatchCode, "a header refusal must be HeaderMismatch")
        }
        _ = MCPHTTPTransport.status(ofResponse: Array(body.utf8), modern: true)
    }

    static func storage(_ bytes: UnsafeRawBufferPointer) {
        let data = Data(bytes)
        let ours = Result { () throws(PaymentSessionStorageError) in try PaymentSession(storageJSON: data) }
        let text = Result { () throws(PaymentSessionStorageError) in
            try PaymentSession(storageJSON: String(decoding: bytes, as: UTF8.self))
        }
        let foundation = Result { () throws(PaymentSessionStorageError) in
            try PaymentSession(foundationStorageJSON: data)
        }
        switch (ours, foundation) {
        case (.success(let session), .success(let reference)):
            precondition(session == reference, "the storage reader read a session otherwise than JSONDecoder")
            precondition(
                (try? PaymentSession(storageJSON: session.storageJSON())) == session,
                "a session read from storage does not write and read back unchanged")
            precondition(
                session.storageJSON() == session.foundationStorageJSON(), "the storage writer differs from JSONEncoder")
        case (.failure, .failure): break
        case (.success, .failure): preconditionFailure("the storage reader read what JSONDecoder refuses")
        case (.failure, .success): preconditionFailure("the storage reader refused what JSONDecoder reads")
        }
        // The text initializer reads the same, unless the bytes were not UTF-8 (then it read repaired text).
        if String(validating: bytes, as: UTF8.self) != nil {
            precondition((try? text.get()) == (try? ours.get()), "reading the text differs from reading the bytes")
        }
    }

    /// A resource server whose only key is one the fuzzer cannot sign with.
    static let resourceServer: OAuthResourceServer = {
        let jwks =
            #"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","alg":"ES256","use":"sig","#
            + #""x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#
        return try! OAuthResourceServer(
            configuration: .init(
                issuer: "https://issuer.fuzz.example", jwksURL: "https://issuer.fuzz.example/jwks.json",
                audience: "https://mcp.fuzz.example/mcp",
                requiredScopes: ["payments"], fetch: { _ in Data(jwks.utf8) }))
    }()

    static func jwt(_ bytes: UnsafeRawBufferPointer) {
        let token = String(decoding: bytes, as: UTF8.self)
        _ = TokenHeader.parse(token)
        // libFuzzer calls from its own thread, never from the cooperative pool the task needs.
        let done = DispatchSemaphore(value: 0)
        let outcome = OutcomeBox()
        Task {
            outcome.set(await resourceServer.authenticate(token: token))
            done.signal()
        }
        done.wait()
        outcome.value.map(check)
    }

    static func check(_ outcome: AuthenticationOutcome) {
        if case .accepted = outcome { preconditionFailure("a token nobody signed was accepted") }
    }

    final class OutcomeBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: AuthenticationOutcome?
        func set(_ value: AuthenticationOutcome) { lock.withLock { stored = value } }
        var value: AuthenticationOutcome? { lock.withLock { stored } }
    }
}
