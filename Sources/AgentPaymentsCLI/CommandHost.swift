public import Logging

/// What the commands of this library read and write, given by the process that runs them: a
/// library reads no process environment and writes to neither standard output nor standard error
/// by itself (RepositoryTests' `librariesTouchNoProcessState`), so a host — or a test — decides
/// both. The executable builds one from its own environment and standard streams
/// (`AgentPayments.host`) and sets it around running a command:
/// `try await CommandHost.$current.withValue(host) { try await command.run() }`.
public struct CommandHost: Sendable {
    /// The environment variables settings are read from.
    public var environment: [String: String]
    /// Writes a command's report (its standard output), exactly as given.
    public var output: @Sendable (String) -> Void
    /// Writes what is said to the operator beside the report (standard error), exactly as given.
    public var diagnostics: @Sendable (String) -> Void
    /// Where the libraries a command uses (the database's pool) log.
    public var logger: Logger

    public init(
        environment: [String: String], output: @escaping @Sendable (String) -> Void,
        diagnostics: @escaping @Sendable (String) -> Void, logger: Logger
    ) {
        self.environment = environment
        self.output = output
        self.diagnostics = diagnostics
        self.logger = logger
    }

    /// The host of the commands running in this task.
    @TaskLocal public static var current: CommandHost?

    /// The current host; a command run without one is a mistake of its host, said as such.
    static func required() throws(MissingCommandHost) -> CommandHost {
        guard let current else { throw MissingCommandHost() }
        return current
    }
}

/// A command of AgentPaymentsCLI ran outside `CommandHost.$current.withValue`.
public struct MissingCommandHost: Error, CustomStringConvertible {
    public var description: String {
        "this command needs its host's environment and output (CommandHost.current is not set)"
    }
}
