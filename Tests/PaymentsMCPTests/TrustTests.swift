import Foundation
import MCPCore
import MCPClient
import PaymentFlow
import PaymentsMCP
import Synchronization
import Testing
import TwilioPayments
import PaymentsTestSupport

/// Each principal its own payments, each tool its scope: what two clients of one server see of
/// each other through every MCP surface (tools, the status resource, completions, subscriptions).
@Suite struct TrustTests {
    static let alice = Principal(id: "token:alice", tenant: "acme", scopes: PaymentScope.defaultForTokens)
    static let bob = Principal(id: "token:bob", tenant: "globex", scopes: PaymentScope.defaultForTokens)
    static let auditor = Principal(id: "token:auditor", tenant: "acme", scopes: [PaymentScope.read])
    static let tokenizer = Principal(id: "token:tokenizer", scopes: [PaymentScope.read, PaymentScope.capture])
    static let operatorPrincipal = Principal(id: "token:ops", scopes: [PaymentScope.read, PaymentScope.operator])

    func client(_ harness: Harness, _ principal: Principal, era: MCPClient.Era = .modern()) async throws -> MCPClient {
        let client = MCPClient(channel: InProcessChannel(server: harness.server, principal: principal), era: era)
        try await client.connect()
        return client
    }

    func structured(_ result: JSONValue) -> JSONValue { result["structuredContent"] ?? .null }

    @Test func toolsAPrincipalCannotUseAreNotListedAndAreRefusedNamingTheScope() async throws {
        let harness = await Harness()
        let names = { (client: MCPClient) async throws -> Set<String> in
            Set(
                try await client.request("tools/list")["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
                    ?? [])
        }
        let auditor = try await client(harness, Self.auditor)
        #expect(try await names(auditor) == ["getPaymentStatus"])
        let local = try await client(harness, .local)
        #expect(try await names(local).count == 10, "stdio's one principal may do everything")
        let refused = try await auditor.callTool("startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(refused["isError"] == true && structured(refused)["error"]?["reason"] == "insufficient-scope")
        #expect(structured(refused)["error"]?["requiredScopes"] == ["payments:capture"])
        #expect(harness.api.calls.isEmpty)

        // Tokenizing needs capture; charging needs charge too, the amount due of the call included.
        let tokenizer = try await client(harness, Self.tokenizer)
        let charge = try await tokenizer.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call), "chargeAmount": "10"])
        #expect(structured(charge)["error"]?["reason"] == "insufficient-scope", "\(charge)")
        try await harness.coordinator.registerAmountDue(
            AmountDue(amount: "25", expiresAt: Date().addingTimeInterval(60)),
            onCall: CallSID(validated: Harness.call))
        let due = try await tokenizer.callTool("startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(structured(due)["error"]?["reason"] == "insufficient-scope", "the amount due is a charge too")
        #expect(harness.api.calls.isEmpty)
        try await harness.coordinator.clearAmountDue(onCall: CallSID(validated: Harness.call))
        let tokenized = try await tokenizer.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(tokenized["isError"] == nil)
    }

    @Test(arguments: [MCPClient.Era.legacy(), .modern()])
    func anotherPrincipalsPaymentIsUnknownEverywhere(era: MCPClient.Era) async throws {
        let harness = await Harness(era: era)
        let alice = try await client(harness, Self.alice, era: era)
        let bob = try await client(harness, Self.bob, era: era)
        let started = try await alice.callTool(
            "startPaymentCapture", arguments: ["callSid": .string(Harness.call), "chargeAmount": "9.99"])
        let sid = try #require(structured(started)["paymentSid"]?.stringValue)
        let uri = "payment://\(Harness.call)/\(sid)/status"
        let nobodys = "PK" + String(repeating: "f", count: 32)

        // Every tool answers bob exactly as for a payment nobody has, with the SID swapped.
        for tool in ["getPaymentStatus", "captureCardNumber", "completePaymentCapture", "cancelPaymentCapture"] {
            let theirs = try await bob.callTool(tool, arguments: ["paymentSid": .string(sid)])
            let nobody = try await bob.callTool(tool, arguments: ["paymentSid": .string(nobodys)])
            #expect(
                theirs["isError"] == true && structured(theirs)["error"]?["reason"] == "unknown-session",
                "\(tool): \(theirs)")
            #expect(
                text(theirs).replacingOccurrences(of: sid, with: nobodys) == text(nobody),
                "\(tool): no existence oracle")
        }
        let byCall = try await bob.callTool("getPaymentStatus", arguments: ["callSid": .string(Harness.call)])
        #expect(structured(byCall)["error"]?["reason"] == "no-session")
        let busy = try await bob.callTool("startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        #expect(structured(busy)["error"]?["reason"] == "call-busy" && !text(busy).contains(sid))

        // The resource: not listed, not readable (the same error as a URI nobody has), no completions.
        let listed = try await bob.request("resources/list")["resources"]?.arrayValue ?? []
        #expect(listed.isEmpty)
        #expect(try await alice.request("resources/list")["resources"]?.arrayValue?.count == 1)
        var theirError = "", nobodyError = ""
        do { _ = try await bob.readText(uri) } catch { theirError = "\(error)" }
        do { _ = try await bob.readText("payment://\(Harness.call)/\(nobodys)/status") } catch {
            nobodyError = "\(error)"
        }
        #expect(!theirError.isEmpty && theirError.replacingOccurrences(of: sid, with: nobodys) == nobodyError)
        let completion = try await bob.request(
            "completion/complete",
            [
                "ref": ["type": "ref/resource", "uri": "payment://{callSid}/{paymentSid}/status"],
                "argument": ["name": "paymentSid", "value": "PK"],
            ])
        #expect(completion["completion"]?["values"] == [])
        let prompt = try await bob.request(
            "prompts/get", ["name": "FinishCapture", "arguments": ["paymentSid": .string(sid)]])
        #expect(!prompt.serialized().contains("9.99"), "a prompt is not tailored to another's payment")

        // A tenant-mate reads it; the operator sees everyone's; neither is alice.
        let auditor = try await client(harness, Self.auditor, era: era)
        #expect(
            try await auditor.callTool("getPaymentStatus", arguments: ["paymentSid": .string(sid)])["isError"] == nil)
        let operatorClient = try await client(harness, Self.operatorPrincipal, era: era)
        #expect(try await operatorClient.request("resources/list")["resources"]?.arrayValue?.count == 1)
        #expect(try await operatorClient.readText(uri) != nil)
    }

    @Test func aSubscriptionToAnotherPrincipalsPaymentNeverCarriesNewsOfIt() async throws {
        let harness = await Harness(era: .legacy())
        let alice = try await client(harness, Self.alice, era: .legacy())
        let bob = try await client(harness, Self.bob, era: .legacy())
        let heard = Tally()
        for (name, client) in [("alice", alice), ("bob", bob)] {
            // A legacy client hears of list changes once it has listed.
            _ = try await client.request("resources/list")
            Task {
                for await message in client.notifications {
                    if case .notification("notifications/resources/updated", let params) = message,
                        let updated = params?["uri"]?.stringValue
                    {
                        heard.counts.withLock { $0[name + " " + updated, default: 0] += 1 }
                    }
                    if case .notification("notifications/resources/list_changed", _) = message {
                        heard.counts.withLock { $0[name + " list", default: 0] += 1 }
                    }
                }
            }
        }
        let started = try await alice.callTool("startPaymentCapture", arguments: ["callSid": .string(Harness.call)])
        let sid = try #require(structured(started)["paymentSid"]?.stringValue)
        let uri = "payment://\(Harness.call)/\(sid)/status"
        // Accepted, as for any URI the template matches: the answer reveals nothing.
        _ = try await bob.request("resources/subscribe", ["uri": .string(uri)])
        _ = try await alice.request("resources/subscribe", ["uri": .string(uri)])
        _ = try await alice.callTool("captureCardNumber", arguments: ["paymentSid": .string(sid)])
        await harness.deliver(
            ["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx"], sid: sid)
        // Then a change of bob's own payment, which he does hear: his stream is in order, so once
        // it has arrived, any news of alice's would have too.
        let otherCall = "CA" + String(repeating: "2", count: 32)
        let his = try await bob.callTool("startPaymentCapture", arguments: ["callSid": .string(otherCall)])
        let hisSID = try #require(structured(his)["paymentSid"]?.stringValue)
        let hisURI = "payment://\(otherCall)/\(hisSID)/status"
        _ = try await bob.request("resources/subscribe", ["uri": .string(hisURI)])
        _ = try await bob.callTool("captureCardNumber", arguments: ["paymentSid": .string(hisSID)])
        let deadline = ContinuousClock.now + .seconds(30)
        while heard.counts.withLock({ $0["bob " + hisURI, default: 0] == 0 || $0["alice " + uri, default: 0] < 2 }),
            ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(heard.counts.withLock { $0["alice " + uri, default: 0] } >= 2, "alice hears each change")
        #expect(heard.counts.withLock { $0["bob " + hisURI, default: 0] } >= 1, "bob hears his own")
        #expect(heard.counts.withLock { $0["bob " + uri, default: 0] } == 0, "bob hears nothing of alice's payment")
        #expect(
            heard.counts.withLock { $0["bob list", default: 0] } == 1,
            "bob's list changed once: for his own payment, not for alice's")
        #expect(heard.counts.withLock { $0["alice list", default: 0] } >= 1)
    }
}

/// Counts by key, shared with the tasks that read notifications.
final class Tally: Sendable {
    let counts = Mutex<[String: Int]>([:])
}

/// Card data typed where it must not be: every argument of every tool is checked, and the
/// refusal quotes nothing.
@Suite struct CardDataInArgumentsTests {
    @Test func aCardNumberInAnyArgumentIsRefusedUnquotedAndNothingIsStarted() async throws {
        let harness = await Harness()
        try await harness.client.connect()
        let cases: [(String, JSONValue)] = [
            ("description", "Customer card 4111 1111 1111 1111 exp 12/29"),
            ("description", "ref 4111-1111-1111-1111-1225"),
            ("chargeAmount", .integer(4_111_111_111_111_111)),
            ("parameter", [["name": "AVSName", "value": "4111111111111111"]]),
            ("paymentConnector", "4111111111111111"),
        ]
        for (name, value) in cases {
            let result = try await harness.client.callTool(
                "startPaymentCapture", arguments: ["callSid": .string(Harness.call), .init(name): value])
            let serialized = result.serialized()
            #expect(
                result["isError"] == true && result["structuredContent"]?["error"]?["reason"] == "card-data-refused",
                "\(name): \(serialized)")
            #expect(text(result).contains("The argument \(name) looks like it holds a card number"))
            #expect(
                !serialized.contains("1111 1111") && !serialized.contains("4111111111111111")
                    && !serialized.contains("1111-1111"),
                "\(name): the value is never echoed")
        }
        #expect(harness.api.calls.isEmpty, "nothing reached Twilio")
        // Ordinary text and digits that are not a card number pass.
        let fine = try await harness.client.callTool(
            "startPaymentCapture",
            arguments: [
                "callSid": .string(Harness.call), "description": "Invoice 2026-1204 for order 12345",
                "chargeAmount": "19.99",
            ])
        #expect(fine["isError"] == nil, "\(fine)")
    }

    @Test func theCoordinatorRefusesCardDataInOptionsForEveryHost() async throws {
        let harness = await Harness()
        for options in [
            PaymentSessionOptions(description: "4111111111111111"),
            PaymentSessionOptions(parameters: ["note": .string("card 5555 5555 5555 4444")]),
        ] {
            do {
                _ = try await harness.coordinator.start(callSID: CallSID(validated: Harness.call), options: options)
                Issue.record("card data in options must be refused")
            } catch {
                guard case .invalidOptions(let problems) = error else {
                    Issue.record("unexpected \(error)")
                    continue
                }
                #expect(
                    problems.joined().contains("card number") && !problems.joined().contains("4111")
                        && !problems.joined().contains("5555"))
            }
        }
        #expect(harness.api.calls.isEmpty)
    }
}
