import AgentPaymentsCLI
import ArgumentParser
import Foundation
import Logging
import Synchronization
import Testing

/// The operator's commands read the environment and write their output through the host that
/// runs them (`CommandHost`), never the process's own: what a test gives is what they see.
@Suite struct CommandHostTests {
    /// What a command wrote, per stream.
    final class Streams: Sendable {
        let output = Mutex("")
        let diagnostics = Mutex("")

        func host(_ environment: [String: String]) -> CommandHost {
            CommandHost(
                environment: environment,
                output: { text in self.output.withLock { $0 += text } },
                diagnostics: { text in self.diagnostics.withLock { $0 += text } },
                logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        }
    }

    /// The verdict line `config check --json` ends with.
    func verdict(_ output: String) throws -> [String: Any] {
        let last = try #require(output.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
    }

    @Test func configCheckReadsTheHostsEnvironment() throws {
        let streams = Streams()
        let command = try ConfigCheck.parse(["--simulate", "--json"])
        try CommandHost.$current.withValue(streams.host(["AGENT_PAYMENTS_HTTP": "127.0.0.1:9"])) {
            try command.run()
        }
        let output = streams.output.withLock { $0 }
        let verdict = try verdict(output)
        #expect(verdict["ok"] as? Bool == true)
        #expect((verdict["summary"] as? String)?.contains("MCP over HTTP on 127.0.0.1:9") == true, "\(output)")
        let http = output.split(separator: "\n").first { $0.contains("\"AGENT_PAYMENTS_HTTP\"") }
        #expect(http?.contains("environment") == true, "\(output)")
        #expect(streams.diagnostics.withLock { $0 }.isEmpty)

        // The same command with an empty environment: stdio, whatever this process's own says.
        let quiet = Streams()
        try CommandHost.$current.withValue(quiet.host([:])) { try command.run() }
        #expect((try self.verdict(quiet.output.withLock { $0 })["summary"] as? String)?.contains("stdio") == true)
    }

    @Test func aMistakeIsToldOnDiagnosticsWithStatusOne() throws {
        let streams = Streams()
        let command = try ConfigCheck.parse(["--simulate"])
        #expect(throws: ExitCode(1)) {
            try CommandHost.$current.withValue(streams.host(["AGENT_PAYMENTS_HTTP": "not-a-port"])) {
                try command.run()
            }
        }
        let said = streams.diagnostics.withLock { $0 }
        #expect(said.hasPrefix("agent-payments: ") && said.contains("\"not-a-port\""), "\(said)")
        #expect(streams.output.withLock { $0 }.contains("AGENT_PAYMENTS_HTTP"), "the report comes first")
    }

    @Test func aCommandWithoutAHostSaysSo() throws {
        let command = try ConfigCheck.parse(["--simulate"])
        #expect(throws: MissingCommandHost.self) { try command.run() }
    }

    @Test func migrateWithoutADatabaseIsAUsageError() async throws {
        let streams = Streams()
        let command = try Migrate.parse([])
        await #expect(throws: ValidationError.self) {
            try await CommandHost.$current.withValue(streams.host([:])) { try await command.run() }
        }
        #expect(streams.output.withLock { $0 }.isEmpty)
    }
}
