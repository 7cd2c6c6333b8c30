import AgentPaymentsCLI
import ArgumentParser
import Foundation
import Logging
import PaymentStorePostgres
import PaymentsSettings

struct AgentPayments: AsyncParsableCommand {
    static let version = "0.1.0"

    /// The way MCP clients start the server — no arguments, `--simulate`, or the three
    /// credentials — with a valid configuration, goes straight to serving: ArgumentParser's
    /// reflection costs ~3 ms of a cold start (Docs/benchmarks.md). Everything else, and every
    /// configuration error (whose message and usage status ArgumentParser prints), takes the
    /// parser's path.
    static func direct(arguments: [String], environment: [String: String]) -> ServerConfiguration? {
        ServerConfiguration.direct(
            arguments: arguments, commands: ["serve", "demo", "migrate", "webhooks", "audit", "config", "help"],
            environment: environment)
    }

    /// Runs the command line, or serves what the entry point has begun to serve (`serving`).
    static func main(serving: (ServerConfiguration, Serve.Beginning)? = nil) async {
        do {
            if let (configuration, beginning) = serving {
                return try await Serve.serve(configuration, beginning: beginning)
            }
            if let configuration = direct(
                arguments: Array(CommandLine.arguments.dropFirst()), environment: processEnvironment())
            {
                return try await Serve.serve(configuration)
            }
            var command = try parseAsRoot()
            try await CommandHost.$current.withValue(host) {
                if var asynchronous = command as? any AsyncParsableCommand {
                    try await asynchronous.run()
                } else {
                    try command.run()
                }
            }
        } catch let unusable as DatabaseUnusable {
            FileHandle.standardError.write(Data("agent-payments: \(unusable)\n".utf8))
            exit(withError: ExitCode(unusable.exitStatus))
        } catch {
            exit(withError: error)
        }
    }

    /// What the operator's commands (AgentPaymentsCLI) read and write: this process's
    /// environment, standard output and error, a log on standard error at `notice`.
    static var host: CommandHost {
        var logger = Logger(label: "agent-payments") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .notice
        return CommandHost(
            environment: processEnvironment(),
            output: { FileHandle.standardOutput.write(Data($0.utf8)) },
            diagnostics: { FileHandle.standardError.write(Data($0.utf8)) }, logger: logger)
    }

    static let configuration = CommandConfiguration(
        commandName: "agent-payments",
        abstract:
            "An MCP server that lets an AI agent take a card or bank payment on a live Twilio call without seeing the card.",
        discussion: """
            Run it from an MCP client (Claude Desktop, your own agent host) over stdio:

              agent-payments <accountSid> <apiKey> <apiSecret>      live, with a Twilio API key
              agent-payments --simulate                             against the built-in Twilio simulator
              agent-payments --simulate --http 8080                 MCP over Streamable HTTP at http://127.0.0.1:8080/mcp
              agent-payments demo                                   a complete simulated payment, printed step by step

            Settings, from the environment or a JSON or YAML file (--config, AGENT_PAYMENTS_CONFIG); the command
            line wins, then the environment, then the file. `agent-payments config check` prints each one's
            effective value and source; Docs/configuration.md says what each does.

            """ + Setting.overview(),
        version: version,
        subcommands: [Serve.self, Demo.self, Migrate.self, Webhooks.self, AuditCommand.self, ConfigCommand.self],
        defaultSubcommand: Serve.self
    )
}
