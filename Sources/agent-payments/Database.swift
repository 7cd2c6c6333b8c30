import ArgumentParser
import Foundation
import Logging
import PaymentStorePostgres
import PaymentsService
import PaymentsSettings
import TwilioPayments

extension Serve {
    /// With a database: runs its pool and change feed around `body`, after migrating and reading
    /// the shared callback key (waiting for the server as configured), and hands `body` the
    /// payments configuration that uses them. Without one, `body` gets the configuration as is.
    static func withStore(
        _ configuration: ServerConfiguration, logger: Logger,
        _ body: (PaymentsConfiguration, PostgresPaymentDatabase?) async throws -> Void
    ) async throws {
        guard let settings = configuration.database else {
            try await body(configuration.payments, nil)
            return
        }
        let database = PostgresPaymentDatabase(
            configuration: settings, logger: Logger(label: "agent-payments.database"))
        try await withThrowingDiscardingTaskGroup { group in
            // Stopped last: the group below ends first, then this is cancelled.
            group.addTask { await database.run() }
            let key: Secret
            do {
                key = try await database.prepare(waitingUpTo: configuration.databaseStartTimeout)
            } catch {
                let message = "agent-payments: the database at \(settings) cannot be used: \(error)\n"
                FileHandle.standardError.write(Data(message.utf8))
                throw ExitCode(75) // EX_TEMPFAIL: worth restarting once the database is back
            }
            logger.info("payment sessions are stored in PostgreSQL", metadata: ["database": "\(settings)"])
            var payments = configuration.payments
            payments.store = database.store
            payments.changeFeed = database.feed
            payments.ledger = database.ledger
            payments.callbackKey = configuration.callbackKey ?? key
            try await body(payments, database)
            group.cancelAll()
        }
    }
}

/// `--database-url` and `--config`, declared once for every command that takes them.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "A JSON or YAML file of settings by their variables' names; the environment and the command line win over it. Or set AGENT_PAYMENTS_CONFIG.",
            valueName: "PATH"))
    var config: String?

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "Keep payment sessions in PostgreSQL, shared by every replica on the same database: postgres://user:password@host:5432/database. Or set DATABASE_URL (which keeps the password out of ps).",
            valueName: "URL"))
    var databaseURL: String?

    /// The database from `--database-url` or `DATABASE_URL` and its start-up wait; `missing` is
    /// the sentence when neither is set.
    func load(missing: String) throws(ValidationError) -> (PostgresDatabaseConfiguration, Duration) {
        let loaded: (configuration: PostgresDatabaseConfiguration, startTimeout: Duration, callbackKey: Secret?)?
        do {
            loaded = try ServerConfiguration.loadDatabase(
                Settings(
                    commandLine: [.databaseURL: databaseURL, .configFile: config].compactMapValues { $0 },
                    environment: ProcessInfo.processInfo.environment))
        } catch {
            throw ValidationError(error.description)
        }
        guard let loaded else { throw ValidationError(missing) }
        return (loaded.configuration, loaded.startTimeout)
    }

    /// Runs `body` on the database's running pool, migrated first (retrying while the server is
    /// not up yet, within the start-up wait); a database that cannot be used exits with a
    /// sentence (status 75 when it cannot be reached).
    func withDatabase(
        missing: String, label: String,
        _ body: (PostgresPaymentDatabase, PostgresDatabaseConfiguration, [Int]) async throws -> Void
    ) async throws {
        let (settings, timeout) = try load(missing: missing)
        var logger = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .notice
        let database = PostgresPaymentDatabase(configuration: settings, logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            let applied: [Int]
            do throws(PostgresStoreError) {
                applied = try await database.migrate(waitingUpTo: timeout)
            } catch {
                FileHandle.standardError.write(
                    Data("agent-payments: the database at \(settings) cannot be used: \(error)\n".utf8))
                throw ExitCode(error.isUnreachable ? 75 : 1)
            }
            try await body(database, settings, applied)
        }
    }
}

/// `agent-payments migrate`: brings the database schema up to date and exits; what a deploy
/// runs before it starts new replicas (each replica also migrates at start, under the same lock).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or update the PostgreSQL schema (DATABASE_URL or --database-url), then exit.")

    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        _ = try database.load(missing: ConfigurationError.missingDatabaseURL.description)
    }

    func run() async throws {
        try await database.withDatabase(
            missing: ConfigurationError.missingDatabaseURL.description, label: "agent-payments.migrate"
        ) {
            _, settings, applied in
            let message =
                applied.isEmpty
                ? "agent-payments: the schema at \(settings) is current (version \(PostgresMigrations.latestVersion))\n"
                : "agent-payments: applied migrations \(applied.map(String.init).joined(separator: ", ")) at \(settings)\n"
            FileHandle.standardError.write(Data(message.utf8))
        }
    }
}

extension PostgresStoreError {
    var isUnreachable: Bool {
        if case .unreachable = self { return true }
        return false
    }
}
