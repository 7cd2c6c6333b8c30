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
        do {
            let (output, mistake) = try options.settings().check(
                simulate: options.simulate, allowUnauthenticated: options.allowUnauthenticated, json: json)
            print(output, terminator: "")
            if let mistake { throw mistake }
        } catch {
            FileHandle.standardError.write(Data("agent-payments: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
