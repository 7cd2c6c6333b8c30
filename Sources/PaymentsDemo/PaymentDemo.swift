import Foundation
import MCPClient
import MCPCore
import TwilioPayments

/// A complete simulated payment through the real protocol: this same executable runs as an
/// MCP server child process (`--simulate`) over stdio, the built-in simulator plays Twilio and
/// the caller, and signed callbacks travel over loopback HTTP. Each step is printed with its
/// masked progress, through the host's `output` (the executable's is its standard output: the
/// demo is not an MCP server).
public struct PaymentDemo: Sendable {
    /// The agent-payments executable to start as the MCP server (`--simulate`).
    public var executable: String
    /// Amount to charge; `nil` saves the card as a token.
    public var amount: String?
    /// The client's version, as it introduces itself.
    public var version: String
    /// Where each line of the story goes, without its line feed.
    public var output: @Sendable (String) -> Void

    /// Why the demo stopped: a tool answered with an error.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(
        executable: String, amount: String?, version: String, output: @escaping @Sendable (String) -> Void
    ) {
        self.executable = executable
        self.amount = amount
        self.version = version
        self.output = output
    }

    /// Runs the payment and tells each step to `output`.
    public func run() async throws {
        let channel = try ChildProcessChannel(executable: executable, arguments: ["--simulate"])
        let client = MCPClient(
            channel: channel, era: .modern(),
            clientInfo: Implementation(name: "agent-payments-demo", version: version))
        let clock = ContinuousClock()
        let started = clock.now
        func say(_ text: String) { output(text) }

        say("agent-payments demo: a simulated card payment, driven over MCP (protocol 2026-07-28)\n")
        let discovered = try await client.connect()
        let info = discovered["_meta"]?[MetaKey.serverInfo]
        say("• server: \(info?["title"]?.stringValue ?? "?") \(info?["version"]?.stringValue ?? "")")
        let tools =
            try await client.request("tools/list")["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        say("• \(tools.count) tools: \(tools.joined(separator: ", "))")

        let callSID = "CA" + Hex.random()
        let prompt = try await client.request(
            "prompts/get", ["name": "StartCapture", "arguments": ["callSid": .string(callSID)]])
        let guidance = prompt["messages"]?.arrayValue?.first?["content"]?["text"]?.stringValue ?? ""
        say("• StartCapture prompt: \(guidance.split(separator: ".").first ?? "")…")

        var arguments: JSONValue = ["callSid": .string(callSID)]
        if let amount { arguments = arguments.setting("chargeAmount", to: .string(amount)) }
        var status = try structured(await client.callTool("startPaymentCapture", arguments: arguments))
        let paymentSID = status["paymentSid"]?.stringValue ?? "?"
        say("• startPaymentCapture → payment \(paymentSID) on call \(callSID)")

        while let tool = status["nextStep"]?["tool"]?.stringValue, tool.hasPrefix("capture") {
            say("\n→ \(status["nextStep"]?["instruction"]?.stringValue ?? tool)")
            status = try structured(
                await client.callTool(
                    tool, arguments: ["callSid": .string(callSID), "paymentSid": .string(paymentSID)]))
            var shown = ""
            let item = Self.items[tool] ?? ""
            while status["nextStep"]?["waitForCaller"] == true {
                status = try structured(
                    await client.callTool(
                        "getPaymentStatus",
                        arguments: [
                            "paymentSid": .string(paymentSID), "waitSeconds": 5, "afterVersion": status["version"] ?? 0,
                        ]))
                let progress = progressLine(status, item: item)
                if progress != shown {
                    say("   \(progress)")
                    shown = progress
                }
            }
        }
        say("\n→ \(status["nextStep"]?["instruction"]?.stringValue ?? "")")
        status = try structured(
            await client.callTool(
                "completePaymentCapture", arguments: ["callSid": .string(callSID), "paymentSid": .string(paymentSID)]))
        while !["completed", "failed", "cancelled", "call-ended"].contains(status["phase"]?.stringValue ?? "") {
            status = try structured(
                await client.callTool(
                    "getPaymentStatus",
                    arguments: [
                        "paymentSid": .string(paymentSID), "waitSeconds": 5, "afterVersion": status["version"] ?? 0,
                    ]))
        }
        say(
            "\n• result: \(status["result"]?.stringValue ?? "?")"
                + (status["paymentToken"]?.stringValue.map { ", token \($0)" } ?? "")
                + (status["paymentConfirmationCode"]?.stringValue.map { ", confirmation \($0)" } ?? "")
                + " — card \(status["paymentCardNumber"]?.stringValue ?? "?") (\(status["paymentCardType"]?.stringValue ?? "?"))"
        )
        say("• \(status["nextStep"]?["instruction"]?.stringValue ?? "")")
        let elapsed = clock.now - started
        say(
            "\nDone in \(elapsed.components.seconds).\(String(format: "%03d", elapsed.components.attoseconds / 1_000_000_000_000_000)) s. The agent only ever saw masked values."
        )
        client.close()
        _ = channel.waitForExit()
    }

    private func structured(_ result: JSONValue) throws -> JSONValue {
        if result["isError"] == true {
            throw Failure(description: result["content"]?.arrayValue?.last?["text"]?.stringValue ?? "the tool failed")
        }
        return result["structuredContent"] ?? [:]
    }

    static let items = [
        "captureCardNumber": "payment-card-number", "captureSecurityCode": "security-code",
        "captureExpirationDate": "expiration-date",
        "capturePostalCode": "postal-code", "captureBankRoutingNumber": "bank-routing-number",
        "captureBankAccountNumber": "bank-account-number",
    ]

    private func progressLine(_ status: JSONValue, item name: String) -> String {
        guard let item = status["items"]?[name] else { return status["phase"]?.stringValue ?? "" }
        let masked = item["masked"]?.stringValue ?? ""
        let error = item["errorType"]?.stringValue.map { " (\($0))" } ?? ""
        return "\(name): \(item["state"]?.stringValue ?? "") \(masked)\(error)"
    }
}
