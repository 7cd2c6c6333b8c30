import ArgumentParser
import Foundation
import PaymentsSettings

/// `agent-payments config …`: the configuration, as the server would read it.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show and check the configuration.", subcommands: [ConfigCheck.self],
        defaultSubcommand: ConfigCheck.self)
}

/// `agent-payments config check`: every setting's effective value (secrets redacted) and where
/// it came from, then the first mistake with the sentence start-up would give (exit 1), or `ok`.
struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract:
            "Print every setting's effective value (secrets redacted) and its source; exit 1 with start-up's sentence on the first mistake."
    )

    @OptionGroup var options: ServeOptions

    @Flag(help: "One JSON object per setting ({\"name\", \"value\", \"origin\"}) instead of a table.")
    var json = false

    func run() throws {
        let settings: Settings
        do {
            settings = try options.settings()
        } catch {
            FileHandle.standardError.write(Data("agent-payments: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(json ? settings.reportJSON() : settings.report(), terminator: "")
        do {
            let configuration = try ServerConfiguration.load(
                settings, simulate: options.simulate, allowUnauthenticated: options.allowUnauthenticated)
            let mode = configuration.simulated ? "the built-in simulator" : "Twilio"
            let transport = configuration.http.map { "MCP over HTTP on \($0.host):\($0.port)" } ?? "MCP over stdio"
            let store = configuration.database.map { "sessions in PostgreSQL at \($0)" } ?? "sessions in memory"
            let summary = "\(mode), \(transport), \(store)"
            print(json ? Self.verdict(["ok": true, "summary": summary]) : "ok: \(summary)")
        } catch {
            if json { print(Self.verdict(["ok": false, "error": error.description])) }
            FileHandle.standardError.write(Data("agent-payments: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// The last JSON line: whether the configuration is valid, and what would run or why not.
    static func verdict(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
