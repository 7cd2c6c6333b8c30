public import ArgumentParser
import Foundation
public import PaymentStorePostgres
import PaymentsSettings

/// `--database-url` and `--config`, declared once for every command that takes them.
public struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "A JSON or YAML file of settings by their variables' names; the environment and the command line win over it. Or set AGENT_PAYMENTS_CONFIG.",
            valueName: "PATH"))
    public var config: String?

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "Keep payment sessions in PostgreSQL, shared by every replica on the same database: postgres://user:password@host:5432/database. Or set DATABASE_URL (which keeps the password out of ps).",
            valueName: "URL"))
    public var databaseURL: String?

    public init() {}

    /// Runs `body` on the database's running pool, migrated first (retrying while the server is
    /// not up, within the start-up wait); without a database, a usage error saying `missing`.
    public func withDatabase(
        missing: String, _ body: (PostgresPaymentDatabase, [Int]) async throws -> Void
    ) async throws {
        let host = try CommandHost.required()
        let loaded = try Result { () throws(ConfigurationError) in
            try ServerConfiguration.loadDatabase(
                Settings(
                    commandLine: [.databaseURL: databaseURL, .configFile: config].compactMapValues { $0 },
                    environment: host.environment))
        }.mapError { ValidationError($0.description) }.get()
        guard let (settings, timeout, _) = loaded else { throw ValidationError(missing) }
        let database = PostgresPaymentDatabase(configuration: settings, logger: host.logger)
        try await database.whileMigrated(waitingUpTo: timeout) { try await body(database, $0) }
    }
}

/// `agent-payments migrate`: brings the database schema up to date and exits; what a deploy
/// runs before it starts new replicas (each replica also migrates at start, under the same lock).
public struct Migrate: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update the PostgreSQL schema (DATABASE_URL or --database-url), then exit.")

    @OptionGroup var database: DatabaseOptions

    public init() {}

    public func run() async throws {
        try await database.withDatabase(missing: ConfigurationError.missingDatabaseURL.description) {
            database, applied in
            try CommandHost.required().diagnostics("agent-payments: \(database.schemaReport(applied: applied))\n")
        }
    }
}
