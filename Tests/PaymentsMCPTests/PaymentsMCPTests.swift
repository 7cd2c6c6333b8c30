import Foundation
import MCPCore
import MCPClient
import PaymentFlow
import PaymentsMCP
import Synchronization
import Testing
import TwilioPayments
import PaymentsTestSupport

struct Harness {
    let api: FakePaymentsAPI = {
        let api = FakePaymentsAPI()
        // The connector in these tests cannot take bank accounts.
        api.refuse { update in
            update == .capture(.bankAccountNumber)
                ? .api(TwilioAPIError(httpStatus: 400, code: 64013, message: "Payment method not supported")) : nil
        }
        return api
    }()
    let coordinator: PaymentCoordinator
    /// The public URL: known unless the harness is made `starting`.
    let publicURL: StartingURLs
    let server: MCPServer
    let client: MCPClient

    init(
        era: MCPClient.Era = .modern(), starting: Bool = false,
        // Generous by default: on a loaded 2-core machine a command can outlast 3 s and answer
        // pending; the budget itself is tested with its real default (VoiceAgentTests).
        maximumWait: Duration = .seconds(10), progressInterval: Duration = .seconds(1)
    ) async {
        publicURL = StartingURLs(known: !starting)
        coordinator = PaymentCoordinator(api: api, callbackURLs: publicURL)
        server = PaymentsMCP.makeServer(version: "0.1.0")
        let mcp = PaymentsMCP(
            server: server, coordinator: coordinator, defaults: PaymentDefaults(tokenType: .reusable, currency: "EUR"),
            maximumWait: maximumWait, progressInterval: progressInterval)
        mcp.install()
        // As a host's service group would (these harnesses live as long as their test).
        Task { try await mcp.run() }
        while !mcp.takesCommands { await Task.yield() }
        client = MCPClient(channel: InProcessChannel(server: server), era: era)
    }

    static let call = "CA" + String(repeating: "1", count: 32)

    func deliver(_ fields: [String: String], sid: String) async {
        let secret = String(api.statusCallbacks.last!.split(separator: "/").last!)
        var all = fields
        all["Sid"] = sid
        do {
            _ = try await coordinator.receiveCallback(
                secret: secret, PaymentStatusCallback(fields: all.map { ($0.key, $0.value) }))
        } catch {
            Issue.record("the callback was not applied: \(error)")
        }
    }
}

/// Callback URLs that are not known until the test says so: what a host's system looks like to
/// the flow while its callback server or tunnel comes up.
final class StartingURLs: CallbackURLProvider {
    private let known: Mutex<Bool>

    init(known: Bool) {
        self.known = Mutex(known)
    }

    func becomeKnown() { known.withLock { $0 = true } }

    func callbackURL(secret: String) throws -> String {
        guard known.withLock({ $0 }) else { throw StillStarting() }
        return "https://example.com/cb/" + secret
    }

    struct StillStarting: Error, CustomStringConvertible {
        var description: String { "the payment system is still starting; try again in a moment" }
    }
}

extension JSONValue {
    /// The payment SID of a tool result that must have one (a refusal fails the test, never crashes it).
    func paymentSID(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(
            self["structuredContent"]?["paymentSid"]?.stringValue, "no payment SID in \(self)",
            sourceLocation: sourceLocation)
    }
}

/// Every text block of a tool result, joined.
func text(_ result: JSONValue) -> String {
    (result["content"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
}

/// The first content block of a tool result, parsed as JSON (seed-compatible results start with it).
func firstJSON(_ result: JSONValue) -> JSONValue? {
    result["content"]?.arrayValue?.first?["text"]?.stringValue.flatMap { try? JSONValue(parsing: $0) }
}

@Suite struct PaymentsMCPTests {
    @Test func listsTheSeedToolsAndTheNewOnes() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let tools = try await harness.client.request("tools/list")["tools"]!.arrayValue!
        let names = tools.compactMap { $0["name"]?.stringValue }
        #expect(
            names == [
                "startPaymentCapture", "captureCardNumber", "captureSecurityCode", "captureExpirationDate",
                "capturePostalCode",
                "captureBankRoutingNumber", "captureBankAccountNumber", "completePaymentCapture",
                "cancelPaymentCapture", "getPaymentStatus",
            ])
        for tool in tools { #expect(tool["outputSchema"] != nil && tool["annotations"] != nil) }
        let status = tools.first { $0["name"] == "getPaymentStatus" }!
        #expect(status["annotations"]?["readOnlyHint"] == true)
        let complete = tools.first { $0["name"] == "completePaymentCapture" }!
        #expect(complete["annotations"]?["destructiveHint"] == true)
        let prompts = try await harness.client.request("prompts/list")["prompts"]!.arrayValue!.compactMap {
            $0["name"]?.stringValue
        }
        #expect(
            prompts == [
                "StartCapture", "CardNumber", "SecurityCode", "ExpirationDate", "PostalCode", "BankAccount",
                "FinishCapture", "Completion", "Error",
            ])
    }

    @Test(arguments: [MCPClient.Era.legacy(), .modern()])
    func guidesAWholePaymentWithMaskedStatus(era: MCPClient.Era) async throws {
        let harness = await Harness(era: era)
        try await harness.client.connect()
        let started = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call), "chargeAmount": 9.5])
        #expect(started["isError"] == nil)
        let status = started["structuredContent"]!
        let sid = status["paymentSid"]!.stringValue!
        #expect(
            status["phase"] == "active" && status["currency"] == "EUR" && status["chargeAmount"] == "9.5"
                && status["tokenType"] == "reusable")
        #expect(
            firstJSON(started) == status,
            "the first block is the status as JSON, as the TypeScript server's results were")
        #expect(status["nextStep"]?["tool"] == "captureCardNumber")
        #expect(text(started).contains("Ask the caller to type the card number"))

        let refused = try await harness.client.callTool(
            "completePaymentCapture", arguments: ["callSid": .string(Harness.call), "paymentSid": .string(sid)])
        #expect(
            refused["isError"] == true
                && text(refused).contains("card number, security code and expiration date are still missing"))
        #expect(refused["content"]?.arrayValue?.count == 1 && refused["structuredContent"] == firstJSON(refused))
        #expect(firstJSON(refused)?["error"]?["message"]?.stringValue?.contains("still missing") == true)
        #expect(firstJSON(refused)?["error"]?["reason"] == "items-missing")
        #expect(
            firstJSON(refused)?["error"]?["missing"] == ["payment-card-number", "security-code", "expiration-date"])

        let wrongOrder = try await harness.client.callTool(
            "captureSecurityCode", arguments: ["callSid": .string(Harness.call), "paymentSid": .string(sid)])
        #expect(wrongOrder["isError"] == true && text(wrongOrder).contains("card number before the security code"))

        _ = try await harness.client.callTool(
            "captureCardNumber",
            arguments: [
                "callSid": .string(Harness.call), "paymentSid": .string(sid), "captureType": "payment-card-number",
            ])
        await harness.deliver(
            [
                "Capture": "payment-card-number", "PartialResult": "false", "PaymentCardNumber": "4111111111111111",
                "PaymentCardType": "visa",
            ], sid: sid)
        let after = try await harness.client.callTool("getPaymentStatus", arguments: ["paymentSid": .string(sid)])
        #expect(
            after["structuredContent"]?["paymentCardNumber"] == "xxxxxxxxxxxx1111"
                && after["structuredContent"]?["paymentCardType"] == "visa")
        #expect(!text(after).contains("4111111111111111"))
        #expect(after["structuredContent"]?["nextStep"]?["tool"] == "captureSecurityCode")
    }

    @Test func badInputIsExplained() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let bad = try await harness.client.callTool("startPaymentCapture", arguments: ["callSid": "CA123"])
        #expect(bad["isError"] == true && text(bad).contains("arguments.callSid: must match the pattern"))
        let card = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call), "cardNumber": "4111111111111111"])
        #expect(
            card["isError"] == true && text(card).contains("arguments.cardNumber: is not a known property"),
            "no tool accepts card data")
        let capture = try await harness.client.callTool(
            "captureCardNumber",
            arguments: [
                "callSid": .string(Harness.call), "paymentSid": .string("PK" + String(repeating: "9", count: 32)),
                "captureType": "security-code",
            ])
        #expect(capture["isError"] == true && text(capture).contains("arguments.captureType"))
        let unknown = try await harness.client.callTool(
            "getPaymentStatus", arguments: ["paymentSid": .string("PK" + String(repeating: "9", count: 32))])
        #expect(unknown["isError"] == true && text(unknown).contains("No payment session"))
    }

    @Test func twilioErrorsArriveExplained() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let started = try await harness.client.callTool(
            "startPaymentCapture",
            arguments: [
                "callSid": .string(Harness.call), "paymentMethod": "ach-debit", "bankAccountType": "consumer-checking",
            ])
        let sid = try started.paymentSID()
        await harness.deliver(
            ["Capture": "bank-routing-number", "PartialResult": "false", "BankRoutingNumber": "121000358"], sid: sid)
        let failed = try await harness.client.callTool(
            "captureBankAccountNumber", arguments: ["callSid": .string(Harness.call), "paymentSid": .string(sid)])
        #expect(failed["isError"] == true)
        #expect(
            failed["structuredContent"] == firstJSON(failed),
            "a refusal is one JSON object, as text and as structuredContent")
        #expect(firstJSON(failed)?["error"]?["twilioCode"] == 64013)
        #expect(firstJSON(failed)?["error"]?["whatToDo"]?.stringValue?.contains("credit-card or ach-debit") == true)
    }

    @Test func theStatusResourceIsListedReadAndPushed() async throws {
        let harness = await Harness(era: .legacy())
        // The first resource-updated notification, whenever it comes (bounded by the suite's own
        // time limit rather than a guess at how long it takes).
        let updated = Task { () -> String? in
            for await message in harness.client.notifications {
                if case .notification("notifications/resources/updated", let params) = message {
                    return params?["uri"]?.stringValue
                }
            }
            return nil
        }
        try await harness.client.connect()
        let sid = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call)]
        ).paymentSID()
        let uri = "payment://\(Harness.call)/\(sid)/status"
        let listed = try await harness.client.request("resources/list")["resources"]!.arrayValue!.compactMap {
            $0["uri"]?.stringValue
        }
        #expect(listed == [uri])
        let body = try JSONValue(parsing: try #require(try await harness.client.readText(uri)))
        for key in ["paymentSid", "paymentMethod", "callSid", "items", "required", "nextStep"] {
            #expect(body[key] != nil, "\(key)")
        }
        _ = try await harness.client.request("resources/subscribe", ["uri": .string(uri)])
        await harness.deliver(
            ["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xx"], sid: sid)
        let bound = Task {
            try await Task.sleep(for: .seconds(10))
            updated.cancel()
        } // a missing notification fails, never hangs
        #expect(await updated.value == uri)
        bound.cancel()
        let completions = try await harness.client.request(
            "completion/complete",
            [
                "ref": ["type": "ref/resource", "uri": "payment://{callSid}/{paymentSid}/status"],
                "argument": ["name": "paymentSid", "value": "PK"],
                "context": ["arguments": ["callSid": .string(Harness.call)]],
            ])
        #expect(completions["completion"]?["values"] == [.string(sid)])
    }

    @Test func promptsSpeakToTheSession() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        do {
            _ = try await harness.client.request("prompts/get", ["name": "StartCapture"])
            Issue.record("callSid was not required")
        } catch MCPClient.Failure.server(let error) {
            #expect(error.code == -32602)
        }
        let sid = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call)]
        ).paymentSID()
        _ = try await harness.client.callTool(
            "captureCardNumber", arguments: ["callSid": .string(Harness.call), "paymentSid": .string(sid)])
        await harness.deliver(["Capture": "payment-card-number", "ErrorType": "invalid-card-number"], sid: sid)
        let prompt = try await harness.client.request(
            "prompts/get", ["name": "Error", "arguments": ["paymentSid": .string(sid)]])
        let guidance = prompt["messages"]?.arrayValue?.first?["content"]?["text"]?.stringValue ?? ""
        #expect(guidance.contains("card number was not valid") && guidance.contains("Next step:"))
    }

    @Test func whileTheSystemIsStartingToolsAnswerAtOnceThatTheyMayBeCalledAgain() async throws {
        let harness = await Harness(starting: true)
        try await harness.client.connect()
        // Answered while the public URL is still unknown (it becomes known below, after these
        // answers): a call that waited for the system would wait here for ever.
        let early = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(early["isError"] == true && text(early).contains("still starting"), "\(early)")
        #expect(early["structuredContent"]?["error"]?["retryable"] == true, "\(early)")
        #expect(harness.api.calls.isEmpty, "nothing was sent to Twilio")
        // Reads need no public URL: they work at once.
        let status = try await harness.client.callTool(
            "getPaymentStatus", arguments: ["callSid": .string(Harness.call)])
        #expect(status["structuredContent"]?["error"]?["reason"] == "no-session", "\(status)")
        harness.publicURL.becomeKnown()
        let late = try await harness.client.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(late["isError"] == nil, "the same call goes ahead once the system is up: \(late)")
    }
}

@Suite struct PromptLibraryTests {
    @Test(arguments: GuidanceTopic.allCases)
    func everyPromptGuidesWithoutCardDataAloud(prompt: GuidanceTopic) {
        let text = PromptLibrary.text(prompt, session: nil)
        #expect(text.count > 300)
        #expect(text.contains("keypad") && text.contains("Never ask the caller to say"))
    }

    @Test(arguments: GuidanceTopic.allCases)
    func promptsSpeakToTheSessionState(prompt: GuidanceTopic) {
        let session = [
            PaymentEvent.captureRequested(.cardNumber, at: Harness.date),
            .callbackReceived(
                Harness.callback(["Capture": "payment-card-number", "ErrorType": "invalid-card-type"]), at: Harness.date
            ),
        ]
        .reduce(Harness.cardSession()) { PaymentReducer.reduce($0, $1).session }
        let text = PromptLibrary.text(prompt, session: session)
        #expect(text.contains(Harness.payment.rawValue) && text.contains("Next step:"))
        if prompt == .error {
            #expect(text.contains("this type of card is not accepted") && text.contains("failed 1 time"))
        }
    }
}

extension Harness {
    static let date = Date(timeIntervalSince1970: 1_800_000_000)
    static let payment = PaymentSID(validated: "PK" + String(repeating: "a", count: 32))

    static func cardSession() -> PaymentSession {
        let fresh = PaymentSession(
            callSID: CallSID(validated: call),
            configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "9.99")), at: date)
        return PaymentReducer.reduce(fresh, .sessionCreated(payment, at: date)).session
    }

    static func callback(_ fields: [String: String]) -> PaymentStatusCallback {
        var all = fields
        all["Sid"] = payment.rawValue
        return PaymentStatusCallback(fields: all.sorted { $0.key < $1.key })
    }
}

@Suite struct MCPNextStepTests {
    @Test func everyActionBecomesAToolAndWords() {
        var session = Harness.cardSession()
        var step = MCPNextStep(session.nextStep)
        #expect(
            step.tool == .captureCardNumber && step.prompt == .cardNumber
                && step.instruction.contains("Call captureCardNumber"))
        session = PaymentReducer.reduce(session, .captureRequested(.cardNumber, at: Harness.date)).session
        step = MCPNextStep(session.nextStep)
        #expect(step.tool == .getPaymentStatus && step.waitForCaller && step.instruction.contains("waitSeconds"))
        let matched = PaymentReducer.reduce(
            PaymentSession(
                callSID: CallSID(validated: Harness.call),
                configuration: PaymentConfiguration(
                    options:
                        PaymentSessionOptions(requireMatchingInputs: [.paymentCardNumber])), at: Harness.date),
            .sessionCreated(Harness.payment, at: Harness.date)
        ).session
        var captured = matched
        captured.items[.cardNumber] = ItemProgress()
        captured.items[.cardNumber]?.state = .captured(masked: "xxxxxxxxxxxx1111")
        step = MCPNextStep(captured.nextStep)
        #expect(step.tool == .captureCardNumber && step.captureType == .cardNumberMatcher)
        #expect(step.instruction.contains("captureType payment-card-number-matcher"))
        // The prompts are the guidance topics, under the seed's prompt names.
        #expect(
            GuidanceTopic.allCases.map(\.rawValue) == [
                "StartCapture", "CardNumber", "SecurityCode", "ExpirationDate", "PostalCode",
                "BankAccount", "FinishCapture", "Completion", "Error",
            ])
    }
}
