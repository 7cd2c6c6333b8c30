import Foundation
import MCPCore
import MCPClient
import PaymentFlow
import PaymentsMCP
import Synchronization
import Testing
import TwilioPayments
import PaymentsTestSupport

/// What voice agents need of the tools: one JSON object per result, waits within a budget,
/// harmless repeats, cancellations that never break a payment, `null` as absent, and the call
/// SID from a header.
@Suite struct VoiceAgentTests {
    static let call = Harness.call

    /// The one JSON object of a result, checked to be its only content and its structuredContent.
    func object(_ result: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let blocks = try #require(result["content"]?.arrayValue, sourceLocation: sourceLocation)
        #expect(blocks.count == 1 && blocks[0]["type"] == "text", "one text block", sourceLocation: sourceLocation)
        let parsed = try #require(firstJSON(result), "the text is JSON", sourceLocation: sourceLocation)
        #expect(
            parsed == result["structuredContent"], "the same object as structuredContent",
            sourceLocation: sourceLocation)
        #expect(parsed["message"]?.stringValue?.isEmpty == false, "a message", sourceLocation: sourceLocation)
        if result["isError"] == true {
            let error = try #require(parsed["error"], sourceLocation: sourceLocation)
            #expect(
                error["reason"]?.stringValue != nil && error["message"]?.stringValue != nil
                    && error["retryable"]?.boolValue != nil
                    && error["whatToDo"]?.stringValue != nil, "\(error)", sourceLocation: sourceLocation)
        }
        return parsed
    }

    /// Delivers the final callback of `item` (what Twilio sends once the caller has typed it).
    func finish(_ item: PaymentItem, _ harness: Harness, sid: String) async {
        let fields: [String: String] =
            switch item {
            case .cardNumber: ["PaymentCardNumber": "4111111111111111", "PaymentCardType": "visa"]
            case .securityCode: ["SecurityCode": "123"]
            default: ["ExpirationDate": "1230"]
            }
        await harness.deliver(fields.merging(["Capture": item.rawValue, "PartialResult": "false"]) { $1 }, sid: sid)
    }

    @Test func everyResultIsOneJSONObjectRefusalsIncluded() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let started = try object(
            try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": .string(Self.call)]))
        #expect(started["phase"] == "active" && started["message"]?.stringValue?.contains("started on call") == true)
        let sid = try #require(started["paymentSid"])
        #expect(
            started["nextStep"]?["arguments"] == ["callSid": .string(Self.call), "paymentSid": sid, "waitSeconds": 10],
            "the complete arguments of the next call")
        let missing = try object(
            try await harness.client.callTool("completePaymentCapture", arguments: ["paymentSid": sid]))
        #expect(missing["error"]?["reason"] == "items-missing" && missing["nextStep"]?["tool"] == "captureCardNumber")
        let invalid = try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": "CA123"])
        #expect(invalid["isError"] == true)
        let argumentError = try object(invalid)
        #expect(
            argumentError["error"]?["reason"] == "invalid-arguments" && argumentError["error"]?["retryable"] == false)
        #expect(argumentError["error"]?["violations"]?.arrayValue?.first?["path"] == "arguments.callSid")
        let noCall = try object(try await harness.client.callTool("startPaymentCapture", arguments: [:]))
        #expect(
            noCall["error"]?["reason"] == "invalid-argument"
                && noCall["error"]?["whatToDo"]?.stringValue?.contains("X-Twilio-Call-Sid") == true)
        let unknown = try object(
            try await harness.client.callTool(
                "getPaymentStatus", arguments: ["paymentSid": .string("PK" + String(repeating: "9", count: 32))]))
        #expect(unknown["error"]?["reason"] == "unknown-session")
    }

    @Test func nullMeansAbsentForEveryOptionalArgument() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let tools = try #require(try await harness.client.request("tools/list")["tools"]?.arrayValue)
        func nulls(_ tool: String, except given: [String: JSONValue]) throws -> JSONValue {
            let schema = try #require(tools.first { $0["name"]?.stringValue == tool }?["inputSchema"])
            var arguments: [String: JSONValue] = [:]
            for name in schema["properties"]?.objectValue?.keys ?? [:].keys { arguments[name] = given[name] ?? .null }
            return .object(arguments)
        }
        let other = "CA" + String(repeating: "2", count: 32)
        let omitted = try object(
            try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": .string(Self.call)]))
        let nulled = try object(
            try await harness.client.callTool(
                "startPaymentCapture", arguments: try nulls("startPaymentCapture", except: ["callSid": .string(other)]))
        )
        func comparable(_ status: JSONValue) -> JSONValue {
            var members = status.objectValue ?? [:]
            for key in ["callSid", "paymentSid", "updatedAt", "message", "nextStep"] {
                members.removeValue(forKey: key)
            }
            return .object(members)
        }
        #expect(comparable(omitted) == comparable(nulled), "a strict model's nulls behave as omissions")
        // The capture, status and command tools likewise.
        let capture = try object(
            try await harness.client.callTool(
                "captureCardNumber", arguments: try nulls("captureCardNumber", except: ["callSid": .string(other)])))
        #expect(
            capture["phase"] == "active" && capture["items"]?["payment-card-number"]?["state"] == "requested"
                && capture["waited"] == nil)
        let status = try object(
            try await harness.client.callTool(
                "getPaymentStatus", arguments: try nulls("getPaymentStatus", except: ["callSid": .string(other)])))
        #expect(
            status["version"] == capture["version"] && status["waited"] == nil,
            "afterVersion null does not make a wait return at once: no wait at all")
        let cancelled = try object(
            try await harness.client.callTool(
                "cancelPaymentCapture",
                arguments: try nulls("cancelPaymentCapture", except: ["callSid": .string(other)])))
        #expect(cancelled["phase"] == "cancelled")
    }

    @Test func repeatsAreHarmless() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let started = try object(
            try await harness.client.callTool(
                "startPaymentCapture", arguments: ["callSid": .string(Self.call), "chargeAmount": "9.99"]))
        let again = try object(
            try await harness.client.callTool(
                "startPaymentCapture", arguments: ["callSid": .string(Self.call), "chargeAmount": "9.99"]))
        #expect(again["resumed"] == true && again["paymentSid"] == started["paymentSid"])
        let different = try object(
            try await harness.client.callTool(
                "startPaymentCapture", arguments: ["callSid": .string(Self.call), "chargeAmount": "10"]))
        #expect(
            different["error"]?["reason"] == "session-in-progress"
                && different["error"]?["paymentSid"] == started["paymentSid"])
        #expect(
            different["nextStep"]?["tool"] == "cancelPaymentCapture"
                && different["nextStep"]?["arguments"]?["paymentSid"] == started["paymentSid"])
        #expect(harness.api.calls.filter { $0.operation == "create" }.count == 1)

        _ = try object(
            try await harness.client.callTool("captureCardNumber", arguments: ["callSid": .string(Self.call)]))
        let sid = try #require(started["paymentSid"]?.stringValue, "\(started)")
        await harness.deliver(
            ["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx"], sid: sid)
        let sent = harness.api.calls.count
        let repeated = try object(
            try await harness.client.callTool("captureCardNumber", arguments: ["callSid": .string(Self.call)]))
        #expect(repeated["repeated"] == true && repeated["items"]?["payment-card-number"]?["masked"] == "xxxx")
        #expect(harness.api.calls.count == sent, "the caller's entry is not restarted")
        let restarted = try object(
            try await harness.client.callTool(
                "captureCardNumber", arguments: ["callSid": .string(Self.call), "restart": true]))
        #expect(restarted["repeated"] == nil && harness.api.calls.count == sent + 1)
    }

    @Test func aCaptureWaitsForTheEntryWithSpeakableProgress() async throws {
        let harness = await Harness(progressInterval: .milliseconds(100))
        try await harness.client.connect()
        let started = try object(
            try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": .string(Self.call)]))
        let sid = try #require(started["paymentSid"]?.stringValue, "\(started)")
        let collected = Collected()
        let progress = Task {
            for await message in harness.client.notifications {
                if case .notification("notifications/progress", let params) = message,
                    params?["progressToken"] == "wait"
                {
                    collected.items.withLock { $0.append(params?["message"]?.stringValue) }
                }
            }
        }
        // The caller finishes once Twilio has accepted the capture and the wait has reported progress twice.
        let paymentSID = try #require(PaymentSID(sid))
        let typing = Task {
            try await eventually("the capture is accepted and progress has been reported") {
                try await harness.coordinator.session(paymentSID)?.inFlight.isEmpty == true
                    && collected.items.withLock { $0.count } >= 2
            }
            await finish(.cardNumber, harness, sid: sid)
        }
        // A wait as long as the harness's budget (10 s): the caller finishes as soon as the
        // conditions above hold, so the call ends on the change however loaded the machine is.
        let result = try object(
            try await harness.client.callTool(
                "captureCardNumber", arguments: ["callSid": .string(Self.call), "waitSeconds": 10],
                progressToken: "wait"))
        try await typing.value
        progress.cancel()
        // Behaviour, not wall-clock time (the suite shares two cores): it ended on the change.
        #expect(
            result["items"]?["payment-card-number"]?["state"] == "captured"
                && result["waited"]?["outcome"] == "changed",
            "it returned when the entry finished, not when the time was up: \(result["waited"] ?? .null)")
        #expect(
            result["message"]?.stringValue?.hasPrefix("The card number is captured.") == true,
            "it says where things stand now")
        #expect(result["nextStep"]?["tool"] == "captureSecurityCode")
        let messages = collected.items.withLock { $0 }
        #expect(messages.count >= 2, "progress every interval while the caller types: \(messages)")
        let spoken = messages.compactMap { $0 }
        #expect(
            Set(spoken).count == spoken.count,
            "a sentence is sent once, not again at every interval (a client may speak each): \(messages)")
        #expect(!spoken.isEmpty)
        for message in spoken {
            #expect(
                message.contains("card number") && !message.contains(where: \.isNumber),
                "speakable, no digits: \(message)")
        }
    }

    @Test func noCallOutlastsTheBudget() async throws {
        let harness = await Harness(maximumWait: .seconds(3)) // the server's default budget
        try await harness.client.connect()
        // Set up through the flow itself: only the calls under test run within the budget.
        let session = try await harness.coordinator.start(
            callSID: try #require(CallSID(Self.call)), options: PaymentSessionOptions())
        let paymentSID = try #require(session.paymentSID)
        _ = try await harness.coordinator.capture(.cardNumber, paymentSID: paymentSID)
        let started: JSONValue = ["paymentSid": .string(paymentSID.rawValue)]
        // The answer is due within the budget and its margin. On a machine so loaded (the whole
        // suite starting at once on two cores) that even the margin is missed, the server says
        // `timeout` (retryable), and a client calls again, as this test does, up to twice more.
        var waited = try object(
            try await harness.client.callTool(
                "getPaymentStatus", arguments: ["callSid": .string(Self.call), "waitSeconds": 60]))
        for _ in 0..<2 where waited["error"]?["reason"] == "timeout" {
            waited = try object(
                try await harness.client.callTool(
                    "getPaymentStatus", arguments: ["callSid": .string(Self.call), "waitSeconds": 60]))
        }
        #expect(
            waited["waited"]?["outcome"] == "time-up",
            "60 s shortened to the 3 s budget (else the call would end in a timeout refusal): \(waited)")
        #expect(waited["message"]?.stringValue?.contains("still entering the card number") == true)
        #expect(
            waited["nextStep"]?["tool"] == "getPaymentStatus" && waited["nextStep"]?["arguments"]?["waitSeconds"] == 3,
            "the next call's wait fits the budget")
        // A Twilio request still unanswered at the deadline goes on; the call answers pending.
        _ = harness.api.holdUpdates()
        let sid = try #require(started["paymentSid"]?.stringValue, "\(started)")
        var pending = try object(
            try await harness.client.callTool("completePaymentCapture", arguments: ["paymentSid": .string(sid)]))
        // As above: on a machine too loaded to answer within the budget, `timeout` or `pending`; the
        // client calls again, and the refusal comes then.
        for _ in 0..<2 where pending["error"]?["reason"] == "timeout" || pending["pending"] == true {
            pending = try object(
                try await harness.client.callTool("completePaymentCapture", arguments: ["paymentSid": .string(sid)]))
        }
        #expect(
            pending["error"]?["reason"] == "item-in-progress",
            "refused before Twilio while the caller types: \(pending)")
        await finish(.cardNumber, harness, sid: sid)
        var security = try object(
            try await harness.client.callTool("captureSecurityCode", arguments: ["paymentSid": .string(sid)]))
        // As above: on a machine too loaded to answer within the margin, `timeout`, and the client
        // calls again; the capture is still with Twilio then, so the call again is a repeat.
        var retried = false
        for _ in 0..<2 where security["error"]?["reason"] == "timeout" {
            retried = true
            security = try object(
                try await harness.client.callTool("captureSecurityCode", arguments: ["paymentSid": .string(sid)]))
        }
        #expect(
            security["pending"] == true || (retried && security["repeated"] == true),
            "the held Twilio request outlasted the budget: \(security)")
        // The pending capture reaches Twilio (held at the gate) and goes on after the call answered.
        try await eventually("the pending capture is with Twilio") {
            harness.api.calls.contains { $0.operation == "capture:security-code" }
        }
        harness.api.releaseUpdates()
        let deadline = ContinuousClock.now + .seconds(30)
        var settled = try await harness.coordinator.session(paymentSID)
        while settled?.inFlight.isEmpty == false, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            settled = try await harness.coordinator.session(paymentSID)
        }
        #expect(settled?.inFlight.isEmpty == true, "Twilio's late answer was stored")
        #expect(harness.api.calls.filter { $0.operation == "capture:security-code" }.count == 1)
    }

    /// One command of each kind, cancelled by the client while its request is with Twilio.
    enum Command: String, CaseIterable { case start, capture, complete, cancel }

    @Test(arguments: Command.allCases)
    func aCancelledRequestNeverBreaksThePayment(command: Command) async throws {
        let harness = await Harness(era: .legacy())
        try await harness.client.connect()
        var sid: JSONValue = .null
        if command != .start {
            sid = try #require(
                try object(
                    try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": .string(Self.call)])
                )["paymentSid"])
        }
        if command == .complete {
            let paymentSID = try #require(sid.stringValue.flatMap(PaymentSID.init))
            for item in [PaymentItem.cardNumber, .securityCode, .expirationDate] {
                _ = try await harness.client.callTool(FlowTool.capture(item).rawValue, arguments: ["paymentSid": sid])
                try await eventually("the \(item) capture is accepted") {
                    try await harness.coordinator.session(paymentSID)?.inFlight.isEmpty == true
                }
                await finish(item, harness, sid: paymentSID.rawValue)
            }
        }
        _ = command == .start ? harness.api.holdCreates() : harness.api.holdUpdates()
        let (tool, operation): (String, String) =
            switch command {
            case .start: ("startPaymentCapture", "create")
            case .capture: ("captureCardNumber", "capture:payment-card-number")
            case .complete: ("completePaymentCapture", "status:complete")
            case .cancel: ("cancelPaymentCapture", "status:cancel")
            }
        let arguments: JSONValue = command == .start ? ["callSid": .string(Self.call)] : ["paymentSid": sid]
        let call = Task { try await harness.client.callTool(tool, arguments: arguments) }
        try await eventually("the request is with Twilio") {
            harness.api.calls.contains { $0.operation.hasPrefix(operation) }
        }
        call.cancel() // the caller talked over the agent: notifications/cancelled
        await #expect(throws: CancellationError.self) { try await call.value }
        try await Task.sleep(for: .milliseconds(50))
        if command == .start { harness.api.releaseCreates() } else { harness.api.releaseUpdates() }
        // The request finishes and stores Twilio's answer; the next call sees it, consistent.
        let deadline = ContinuousClock.now + .seconds(30)
        var status: JSONValue = .null
        repeat {
            status = try object(
                try await harness.client.callTool("getPaymentStatus", arguments: ["callSid": .string(Self.call)]))
            let session = try await harness.coordinator.sessions(onCall: CallSID(Self.call)!).first
            if session?.inFlight.isEmpty == true && session?.paymentSID != nil { break }
            try await Task.sleep(for: .milliseconds(5))
        } while ContinuousClock.now < deadline
        let expected: String =
            switch command {
            case .start: "active"
            case .capture: "active"
            case .complete: "completing"
            case .cancel: "cancelled"
            }
        #expect(status["phase"]?.stringValue == expected, "\(command): \(status)")
        if command == .capture { #expect(status["items"]?["payment-card-number"]?["state"] == "requested") }
        #expect(
            harness.api.calls.filter { $0.operation.hasPrefix(operation) }.count == 1,
            "sent once, never abandoned or doubled")
        // And the payment goes on.
        if command == .start || command == .capture {
            let next = try object(
                try await harness.client.callTool("captureCardNumber", arguments: ["callSid": .string(Self.call)]))
            #expect(next["isError"] == nil && next["items"]?["payment-card-number"]?["state"] == "requested")
        }
    }

    @Test func theCallHeaderSuppliesTheCallSid() async throws {
        let harness = await Harness()
        let sink = CollectingSink()
        let connection = harness.server.connect(sink: sink)
        defer { connection.close() }
        func call(_ id: Int, _ tool: String, _ arguments: JSONValue, header: String?) async throws -> JSONValue {
            let meta: JSONValue = [MetaKey.protocolVersion: "2026-07-28", MetaKey.clientCapabilities: [:]]
            connection.receive(
                message: .request(
                    id: .number(Int64(id)), method: "tools/call",
                    params: ["name": .string(tool), "arguments": arguments, "_meta": meta]),
                transportHeaders: header.map { ["x-twilio-call-sid": $0] } ?? [:])
            return try #require(try await sink.response(to: id)["result"])
        }
        let started = try object(try await call(1, "startPaymentCapture", [:], header: Self.call))
        #expect(started["callSid"]?.stringValue == Self.call)
        let capture = try object(try await call(2, "captureCardNumber", [:], header: Self.call))
        #expect(
            capture["error"] == nil && capture["callSid"]?.stringValue == Self.call,
            "neither SID typed: the header names the call, the call its session")
        try await eventually("the capture named by the header alone is requested") {
            try await harness.coordinator.sessions(onCall: try #require(CallSID(Self.call))).first?.state(.cardNumber)
                == .requested
        }
        let mismatch = try object(
            try await call(
                3, "getPaymentStatus", ["callSid": .string("CA" + String(repeating: "3", count: 32))], header: Self.call
            ))
        #expect(mismatch["error"]?["reason"] == "call-sid-mismatch")
        let malformed = try object(try await call(4, "getPaymentStatus", [:], header: "CA-not-a-sid"))
        #expect(malformed["error"]?["reason"] == "invalid-argument")
        let argumentWins = try object(
            try await call(5, "getPaymentStatus", ["callSid": .string(Self.call)], header: "CA-not-a-sid"))
        #expect(argumentWins["error"] == nil, "a malformed header cannot name the call; the argument still can")
        let empty = try object(try await call(6, "getPaymentStatus", ["callSid": .string(Self.call)], header: " "))
        #expect(empty["error"] == nil, "an empty header (an unresolved platform variable) is no header")
        let none = try object(try await call(7, "getPaymentStatus", [:], header: ""))
        #expect(
            none["error"]?["reason"] == "invalid-argument"
                && none["error"]?["message"]?.stringValue?.contains("paymentSid") == true)
    }
}

/// Progress messages seen by a test, shared with the task that reads them.
final class Collected: Sendable {
    let items = Mutex<[String?]>([])
}

/// Waits until `condition` holds, failing the test (never hanging it) after `seconds`.
func eventually(
    _ what: String, seconds: Int = 30, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("never happened: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}

/// A message sink that keeps every line and hands out responses by id.
final class CollectingSink: MessageSink {
    private let lines = Mutex<[JSONValue]>([])

    func send(_ line: [UInt8]) {
        guard let value = try? JSONValue(parsing: String(decoding: line, as: UTF8.self)) else { return }
        lines.withLock { $0.append(value) }
    }

    func response(to id: Int) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let found = lines.withLock({
                $0.first {
                    $0["id"] == .integer(Int64(id)) && $0["result"] != nil
                        || $0["id"] == .integer(Int64(id)) && $0["error"] != nil
                }
            }) {
                return found
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw CancellationError()
    }
}
