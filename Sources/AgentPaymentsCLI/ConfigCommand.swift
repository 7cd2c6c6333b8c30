public import ArgumentParser
import Foundation
import PaymentsSettings

/// `agent-payments config …`: the configuration, as the server would read it.
public struct ConfigCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show and check the configuration.", subcommands: [ConfigCheck.self],
        defaultSubcommand: ConfigCheck.self)

    public init() {}
}

/// `agent-payments config check`: every setting's effective value (secrets redacted) and where
/// it came from, then the first mistake with the sentence start-up would give (exit 1), or `ok`.
public struct ConfigCheck: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "check",
        abstract:
            "Print every setting's effective value (secrets redacted) and its source; exit 1 with start-up's sentence on the first mistake."
    )

    @OptionGroup var options: ServeOptions

    @Flag(help: "One JSON object per setting ({\"name\", \"value\", \"origin\"}) instead of a table.")
    var json = false

    public init() {}

    public func run() throws {
        let host = try CommandHost.required()
        do {
            let (output, mistake) = try options.settings(environment: host.environment).check(
                simulate: options.simulate, allowUnauthenticated: options.allowUnauthenticated, json: json)
            host.output(output)
            if let mistake { throw mistake }
        } catch {
            host.diagnostics("agent-payments: \(error)\n")
            throw ExitCode(1)
        }
    }
}
