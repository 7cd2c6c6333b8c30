import ArgumentParser
import Foundation
import PaymentsDemo

/// `agent-payments demo`: a complete simulated payment through this same executable as the MCP
/// server child (PaymentsDemo drives it), each step printed.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a complete simulated payment through the MCP server and print each step.")

    @Option(help: "Milliseconds between the simulated caller's keypresses.")
    var pacing: Int = 60

    @Option(help: "Amount to charge; omit to save the card as a token.")
    var amount: String?

    func run() async throws {
        // The child inherits these: the caller's pace, and a quiet server (no audit lines either).
        setenv("AGENT_PAYMENTS_SIMULATOR_PACING_MS", String(max(0, pacing)), 1)
        setenv("AGENT_PAYMENTS_LOG_LEVEL", "warning", 0)
        setenv("AGENT_PAYMENTS_AUDIT", "off", 0)
        // This very executable, found portably (Linux and macOS).
        let executable = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0]))
            .resolvingSymlinksInPath().path
        do {
            try await PaymentDemo(
                executable: executable, amount: amount, version: AgentPayments.version,
                output: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }
            ).run()
        } catch let failure as PaymentDemo.Failure {
            throw ValidationError(failure.description)
        }
    }
}
