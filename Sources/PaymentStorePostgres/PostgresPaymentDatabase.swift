public import Logging
import PaymentFlow
public import PostgresNIO
public import ServiceLifecycle
public import TwilioPayments

/// Everything a replica needs from PostgreSQL, from one ``PostgresDatabaseConfiguration``: the
/// connection pool, the ``PostgresPaymentStore``, the ``PostgresChangeFeed``, the migrations,
/// and the callback key every replica shares.
///
/// ``run()`` runs the pool and the feed until cancelled or a graceful shutdown; start it first
/// and stop it last. ``prepare(waitingUpTo:)`` migrates and reads the callback key, retrying
/// while the server is not up yet.
public final class PostgresPaymentDatabase: Service, Sendable {
    public let configuration: PostgresDatabaseConfiguration
    public let client: PostgresClient
    public let store: PostgresPaymentStore
    public let feed: PostgresChangeFeed
    private let logger: Logger

    public init(configuration: PostgresDatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .error)  // the pool's own chatter: this library logs what matters
        client = PostgresClient(configuration: configuration.clientConfiguration(), backgroundLogger: quiet)
        store = PostgresPaymentStore(client: client, requestTimeout: configuration.requestTimeout, logger: logger)
        feed = PostgresChangeFeed(store: store)
    }

    /// Runs the connection pool, and the change feed's listening connection, until cancelled
    /// or a graceful shutdown (the pool is closed after the feed).
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            await feed.run()
            group.cancelAll()
        }
    }

    /// Applies pending migrations (``PostgresMigrations``); the versions applied.
    @discardableResult
    public func migrate() async throws(PostgresStoreError) -> [Int] {
        do {
            return try await PostgresMigrations.migrate(client, logger: logger)
        } catch {
            throw PostgresStoreError.from(error)
        }
    }

    /// The key callback secrets are derived from, the same in every replica: the stored one, or
    /// a new random one stored now (the first replica to store it wins).
    public func sharedCallbackKey() async throws(PostgresStoreError) -> Secret {
        let fresh = PathSecret.make() + PathSecret.make()
        do {
            // Two statements, not one: a replica whose insert waited on another's and then did
            // nothing must read with a snapshot taken after that one committed.
            try await client.query("INSERT INTO agent_payments_settings (name, value) VALUES ('callback_key', \(fresh)) ON CONFLICT (name) DO NOTHING",
                                   logger: logger)
            let rows = try await client.query("SELECT value FROM agent_payments_settings WHERE name = 'callback_key'", logger: logger)
            for try await value in rows.decode(String.self) { return Secret(value) }
        } catch {
            throw PostgresStoreError.from(error)
        }
        throw .unreadable("the shared callback key could not be stored")
    }

    /// Migrates, then returns the shared callback key (``sharedCallbackKey()``), retrying while the
    /// server cannot be reached, for up to `timeout`; the feed listens by then too. A schema newer
    /// than this build, or a server that refuses, fails at once.
    public func prepare(waitingUpTo timeout: Duration) async throws(PostgresStoreError) -> Secret {
        let deadline = ContinuousClock.now + timeout
        var delay: Duration = .milliseconds(100)
        while true {
            do {
                try await migrate()
                let key = try await sharedCallbackKey()
                _ = await feed.listening(waitingUpTo: max(.zero, deadline - .now))
                return key
            } catch {
                guard case .unreachable = error, ContinuousClock.now + delay < deadline, !Task.isCancelled else { throw error }
                logger.warning("PostgreSQL is not reachable yet; retrying", metadata: ["database": "\(configuration)", "reason": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
