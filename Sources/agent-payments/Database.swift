import ArgumentParser
import Foundation
import Logging
import PaymentStorePostgres
import PaymentsService
import TwilioPayments

extension Serve {
    /// With a database: runs its pool and change feed around `body`, after migrating and reading
    /// the shared callback key (waiting for the server as configured), and hands `body` the
    /// payments configuration that uses them. Without one, `body` gets the configuration as is.
    static func withStore(_ configuration: ServerConfiguration, logger: Logger,
                          _ body: (PaymentsConfiguration, PostgresPaymentDatabase?) async throws -> Void) async throws {
        guard let settings = configuration.database else {
            try await body(configuration.payments, nil)
            return
        }
        let database = PostgresPaymentDatabase(configuration: settings, logger: Logger(label: "agent-payments.database"))
        try await withThrowingDiscardingTaskGroup { group in
            // Stopped last: the group below ends first, then this is cancelled.
            group.addTask { await database.run() }
            let key: Secret
            do {
                key = try await database.prepare(waitingUpTo: configuration.databaseStartTimeout)
            } catch {
                let message = "agent-payments: the database at \(settings) cannot be used: \(error)\n"
                FileHandle.standardError.write(Data(message.utf8))
                throw ExitCode(75)  // EX_TEMPFAIL: worth restarting once the database is back
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

/// `agent-payments migrate`: brings the database schema up to date and exits; what a deploy
/// runs before it starts new replicas (each replica also migrates at start, under the same lock).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Create or update the PostgreSQL schema (DATABASE_URL or --database-url), then exit.")

    @Option(name: .customLong("database-url"), help: ArgumentHelp(
        "The PostgreSQL database, postgres://user:password@host:5432/database. Or set DATABASE_URL (which keeps the password out of ps).",
        valueName: "URL"))
    var databaseURL: String?

    func validate() throws {
        _ = try load()
    }

    private func load() throws(ValidationError) -> (PostgresDatabaseConfiguration, Duration) {
        let loaded: (configuration: PostgresDatabaseConfiguration, startTimeout: Duration, callbackKey: Secret?)?
        do {
            loaded = try ServerConfiguration.loadDatabase(databaseURL, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        guard let loaded else { throw ValidationError(ConfigurationError.missingDatabaseURL.description) }
        return (loaded.configuration, loaded.startTimeout)
    }

    func run() async throws {
        let (settings, timeout) = try load()
        var logger = Logger(label: "agent-payments.migrate", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .notice
        let database = PostgresPaymentDatabase(configuration: settings, logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await database.run() }
            do throws(PostgresStoreError) {
                // Retrying while the server is not up yet, within the start-up wait.
                let applied = try await database.migrate(waitingUpTo: timeout)
                let message = applied.isEmpty
                    ? "agent-payments: the schema at \(settings) is current (version \(PostgresMigrations.latestVersion))\n"
                    : "agent-payments: applied migrations \(applied.map(String.init).joined(separator: ", ")) at \(settings)\n"
                FileHandle.standardError.write(Data(message.utf8))
            } catch {
                FileHandle.standardError.write(Data("agent-payments: migration failed at \(settings): \(error)\n".utf8))
                throw ExitCode(error.isUnreachable ? 75 : 1)
            }
            group.cancelAll()
        }
    }
}

extension PostgresStoreError {
    var isUnreachable: Bool {
        if case .unreachable = self { return true }
        return false
    }
}
