import Foundation
import MCPCore
import MCPClient
import PaymentFlow
import PaymentsMCP
import Synchronization
import Testing
import TwilioPayments
import PaymentsTestSupport

/// What an agent sees while the session store is away (a database restarting): tools refuse with
/// a retryable `store-unavailable`, resource reads fail with a JSON-RPC error saying the same,
/// and once the store is back the same session carries on.
@Suite struct StoreOutageTests {
    let api = FakePaymentsAPI()
    let store = SwitchableStore()
    let coordinator: PaymentCoordinator
    let client: MCPClient

    init() async {
        coordinator = PaymentCoordinator(
            api: api, store: store, callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.com/cb"))
        let server = PaymentsMCP.makeServer(version: "0.1.0")
        // A generous budget: on a loaded machine (the whole suite on two cores) a start can take
        // more than the default 3 s and answer pending, which is not what this test is about.
        let mcp = PaymentsMCP(
            server: server, coordinator: coordinator, defaults: PaymentDefaults(), maximumWait: .seconds(10))
        mcp.install()
        Task { try await mcp.run() }
        client = MCPClient(channel: InProcessChannel(server: server), era: .modern())
    }

    @Test func toolsAndResourcesSayRetryableWhileTheStoreIsAwayAndTheSessionCarriesOn() async throws {
        let call = "CA" + String(repeating: "4", count: 32)
        let started = try await client.callTool("startPaymentCapture", arguments: ["callSid": .string(call)])
        #expect(started["isError"] == nil)
        let sid = try #require(started["structuredContent"]?["paymentSid"]?.stringValue)
        let uri = SessionJSON.uri(callSID: CallSID(validated: call), paymentSID: PaymentSID(validated: sid))

        store.switchOff()
        let sent = api.calls.count
        let refused = try await client.callTool(
            "captureCardNumber", arguments: ["callSid": .string(call), "paymentSid": .string(sid)])
        #expect(refused["isError"] == true)
        let error = try #require(firstJSON(refused)?["error"])
        #expect(error["reason"] == "store-unavailable" && error["retryable"] == true)
        #expect(error["message"]?.stringValue?.contains("nothing was lost") == true)
        #expect(api.calls.count == sent, "nothing reaches Twilio without a stored request")

        let status = try await client.callTool("getPaymentStatus", arguments: ["paymentSid": .string(sid)])
        #expect(firstJSON(status)?["error"]?["reason"] == "store-unavailable")

        await #expect {
            _ = try await client.readText(uri)
        } throws: { thrown in
            guard case .server(let rpc) = thrown as? MCPClient.Failure else { return false }
            return rpc.code == JSONRPCError.internalErrorCode && rpc.data?["reason"] == "store-unavailable"
                && rpc.data?["retryable"] == true
        }
        // Other refusals are not worth retrying as they are.
        store.switchOn()
        let unknown = try await client.callTool(
            "getPaymentStatus", arguments: ["paymentSid": .string("PK" + String(repeating: "9", count: 32))])
        #expect(firstJSON(unknown)?["error"]?["retryable"] == false)

        let captured = try await client.callTool(
            "captureCardNumber", arguments: ["callSid": .string(call), "paymentSid": .string(sid)])
        #expect(captured["isError"] == nil)
        #expect(captured["structuredContent"]?["items"]?["payment-card-number"]?["state"] == "requested")
        #expect(try await client.readText(uri)?.contains("\"requested\"") == true)
    }
}
