import Foundation
import MCPCore
import PaymentFlow
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

    /// Runs one input.
    public func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .json: Self.json(bytes)
        case .engine: Self.engine(bytes)
        case .callback: Self.callback(bytes)
        }
    }

    static func json(_ bytes: UnsafeRawBufferPointer) {
        guard let value = try? JSONValue(parsing: Array(bytes)) else { return }
        let text = value.serialized()
        guard let again = try? JSONValue(parsing: Array(text.utf8)) else {
            preconditionFailure("serialized JSON does not parse back: \(text.prefix(200))")
        }
        precondition(again == value || Self.containsDoubles(value), "JSON round trip changed the value: \(text.prefix(200))")
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
        server.register(Tool(name: "echo", description: "echo", inputSchema: [
            "type": "object", "properties": ["text": ["type": "string", "pattern": "^[a-z]*$", "maxLength": 64]], "additionalProperties": false,
        ]) { call in ToolResult(text: call.arguments["text"]?.stringValue ?? "") })
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
        guard let body = String(validating: bytes, as: UTF8.self), let fields = FormEncoding.decode(body) else { return }
        let callback = PaymentStatusCallback(fields: fields)
        _ = callback.unrecognizedValues
        let date = Date(timeIntervalSince1970: 1_800_000_000)
        let sid = PaymentSID(validated: "PK" + String(repeating: "a", count: 32))
        let fresh = PaymentSession(callSID: CallSID(validated: "CA" + String(repeating: "b", count: 32)),
                                   configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "1.00", postalCode: true)), at: date)
        var session = PaymentReducer.reduce(fresh, .sessionCreated(sid, at: date)).session
        for item in [PaymentItem.cardNumber, .securityCode] {
            session = PaymentReducer.reduce(session, .captureRequested(item, at: date, idempotencyKey: "k")).session
            let after = PaymentReducer.reduce(session, .callbackReceived(callback, at: date.addingTimeInterval(1))).session
            precondition(after.version >= session.version, "a callback moved the session's version backwards")
            precondition(!(session.phase.isFinished && after != session), "a callback changed a finished session")
            _ = after.nextStep
            session = after
        }
    }
}
