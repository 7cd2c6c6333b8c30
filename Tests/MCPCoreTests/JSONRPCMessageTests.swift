import Testing
@testable import MCPCore

@Suite struct JSONRPCMessageTests {
    private func decode(_ text: String) -> Result<JSONRPCMessage, JSONRPCMessage.DecodingFailure> {
        JSONRPCMessage.decode(Array(text.utf8))
    }

    @Test func decodesRequestsWithStringAndNumberIDs() {
        #expect(
            decode(#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#)
                == .success(.request(id: .string("a"), method: "ping", params: nil)))
        #expect(
            decode(#"{"jsonrpc":"2.0","id":7,"method":"x","params":{"k":1}}"#)
                == .success(.request(id: .number(7), method: "x", params: ["k": 1])))
    }

    @Test func decodesNotificationsAndResponses() {
        #expect(
            decode(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                == .success(.notification(method: "notifications/initialized", params: nil)))
        #expect(decode(#"{"jsonrpc":"2.0","id":1,"result":{}}"#) == .success(.result(id: .number(1), result: [:])))
        #expect(
            decode(#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}}"#)
                == .success(.error(id: .number(1), error: JSONRPCError(code: -1, message: "m"))))
    }

    @Test func toleratesUnknownMembers() {
        #expect(
            decode(#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":{"x":[1]}}"#)
                == .success(.request(id: .number(1), method: "ping", params: nil)))
    }

    @Test(arguments: [
        (#"not json"#, JSONRPCError.parseErrorCode, nil as RequestID?),
        (#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, JSONRPCError.invalidRequestCode, nil),
        (#""text""#, JSONRPCError.invalidRequestCode, nil),
        (#"{"id":1,"method":"ping"}"#, JSONRPCError.invalidRequestCode, .number(1)),
        (#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, JSONRPCError.invalidRequestCode, nil),
        (#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, JSONRPCError.invalidRequestCode, nil),
        (#"{"jsonrpc":"2.0","id":"q","method":3}"#, JSONRPCError.invalidRequestCode, .string("q")),
        (#"{"jsonrpc":"2.0","id":2,"method":"x","params":[1]}"#, JSONRPCError.invalidParamsCode, .number(2)),
        (#"{"jsonrpc":"2.0","id":3}"#, JSONRPCError.invalidRequestCode, .number(3)),
    ])
    func classifiesBadMessages(text: String, code: Int, id: RequestID?) {
        guard case .failure(let failure) = decode(text) else {
            Issue.record("\(text) decoded")
            return
        }
        #expect(failure.error.code == code)
        #expect(failure.id == id)
    }

    @Test func encodesOneLineWithTheIDUnchanged() {
        let line = JSONRPCMessage.result(id: .number(9007199254740993), result: ["ok": true]).encodedLine()
        #expect(
            String(decoding: line, as: UTF8.self)
                == "{\"id\":9007199254740993,\"jsonrpc\":\"2.0\",\"result\":{\"ok\":true}}\n")
        let error = JSONRPCMessage.error(id: nil, error: .parseError("x")).json
        #expect(error["id"] == .null)
    }

    @Test func unsupportedVersionErrorCarriesTheSupportedList() {
        let error = JSONRPCError.unsupportedProtocolVersion(requested: "1", supported: ["2026-07-28"])
        #expect(error.code == -32022)
        #expect(error.data == ["requested": "1", "supported": ["2026-07-28"]])
    }
}
