public import Logging
public import PaymentFlow
public import PostgresNIO
public import ServiceLifecycle
public import TwilioPayments
import Synchronization

/// Everything a replica needs from PostgreSQL, from one ``PostgresDatabaseConfiguration``: the
/// connection pool, the ``PostgresPaymentStore``, the ``PostgresChangeFeed``, the webhook
/// ``PostgresPaymentOutbox``, the migrations, and the callback key every replica shares.
///
/// ``run()`` runs the pool and the feed until cancelled or a graceful shutdown: a `Service` for
/// the host's group, first in it so that it stops last. ``prepare(waitingUpTo:)`` migrates and
/// reads the callback key, retrying while the server is not up yet: what a host runs before its
/// listener starts (Hummingbird's `beforeServerStarts`). The database is the payments' callback
/// key source (``callbackKey()``): the key every replica shares, read once and kept.
public final class PostgresPaymentDatabase: Service, CallbackKeySource, CustomStringConvertible, Sendable {
    /// Its name in a service group and in logs.
    public var description: String { "postgresql" }
    public let configuration: PostgresDatabaseConfiguration
    public let client: PostgresClient
    public let store: PostgresPaymentStore
    public let feed: PostgresChangeFeed
    /// Daily totals and amounts due, shared by every replica.
    public let ledger: PostgresSpendingLedger
    /// The webhook outbox the store writes with each change, for every replica to deliver.
    public let outbox: PostgresPaymentOutbox
    /// The audit trail, one hash chain for every replica.
    public let audit: PostgresAuditTrail
    private let logger: Logger
    /// The shared callback key once read.
    private let key = Mutex<Secret?>(nil)

    public init(configuration: PostgresDatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        if !configuration.isLocal, !configuration.verifiesServer {
            logger.warning(
                "the database is on another machine and its connection does not verify the server; use sslmode=verify-full",
                metadata: ["database": "\(configuration)"])
        }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .error) // the pool's own chatter: this library logs what matters
        client = PostgresClient(
            configuration: configuration.clientConfiguration(),
            eventLoopGroup: SpreadingEventLoopGroup(PostgresClient.defaultEventLoopGroup), backgroundLogger: quiet)
        store = PostgresPaymentStore(
            client: client, requestTimeout: configuration.requestTimeout, clock: configuration.timeoutClock,
            logger: logger)
        feed = PostgresChangeFeed(store: store)
        ledger = PostgresSpendingLedger(
            client: client, requestTimeout: configuration.requestTimeout, clock: configuration.timeoutClock,
            logger: logger)
        outbox = PostgresPaymentOutbox(
            client: client, requestTimeout: configuration.requestTimeout, clock: configuration.timeoutClock,
            logger: logger)
        audit = PostgresAuditTrail(
            client: client, requestTimeout: configuration.requestTimeout, clock: configuration.timeoutClock,
            logger: logger)
    }

    /// Runs the connection pool, the change feed's listening connection and the audit trail's
    /// writer, until cancelled or a graceful shutdown (queued audit records are written, then the
    /// pool is closed).
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.audit.run() }
            await feed.run()
            // Shutting down: the audit records still queued are written while the pool is open.
            await audit.flush(within: .seconds(3))
            group.cancelAll()
        }
    }

    /// Runs `body` once the schema is migrated (retrying while the server cannot be reached, up
    /// to `timeout`), with the versions applied; the pool and feed run as a child task until
    /// `body` returns or throws. For what uses the database before a host's `ServiceGroup`
    /// exists, or a command that exits when done. A database that cannot be used throws
    /// ``DatabaseUnusable``.
    public func whileMigrated<T: Sendable>(
        waitingUpTo timeout: Duration, _ body: ([Int]) async throws -> T
    ) async throws -> T {
        try await whileRunning {
            try await body(
                try await usable { () async throws(PostgresStoreError) in try await migrate(waitingUpTo: timeout) })
        }
    }

    /// `work` on this database, its failure as ``DatabaseUnusable``.
    public func usable<T, Failure: Error>(_ work: () async throws(Failure) -> T) async throws(DatabaseUnusable) -> T {
        do throws(Failure) {
            return try await work()
        } catch {
            var unreachable = error is PaymentStoreError // the store's own sentence: it is away
            if case .unreachable? = error as? PostgresStoreError { unreachable = true }
            throw DatabaseUnusable(
                description: "the database at \(configuration) cannot be used: \(error)",
                exitStatus: unreachable ? 75 : 1)
        }
    }

    private func whileRunning<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// What migrating did, in a sentence: the versions applied, or that the schema was current.
    public func schemaReport(applied: [Int]) -> String {
        applied.isEmpty
            ? "the schema at \(configuration) is current (version \(PostgresMigrations.latestVersion))"
            : "applied migrations \(applied.map(String.init).joined(separator: ", ")) at \(configuration)"
    }

    /// Applies pending migrations (``PostgresMigrations``); the versions applied.
    @discardableResult
    public func migrate() async throws(PostgresStoreError) -> [Int] {
        do {
            // Bounded like every request (migrations are a few statements; a lock held by another
            // replica's migration is waited for within the same bound, then retried by prepare).
            return try await withTimeout(max(configuration.requestTimeout * 6, .seconds(30))) { [client, logger] in
                try await PostgresMigrations.migrate(client, logger: logger)
            }
        } catch {
            throw PostgresStoreError.from(error)
        }
    }

    /// The key callback secrets are derived from, the same in every replica: the stored one, or
    /// a new random one stored now (the first replica to store it wins).
    public func sharedCallbackKey() async throws(PostgresStoreError) -> Secret {
        let fresh = PathSecret.make() + PathSecret.make()
        let stored: String?
        do {
            stored = try await withTimeout(configuration.requestTimeout, on: configuration.timeoutClock) {
                [client, logger] in
                // Two statements, not one: a replica whose insert waited on another's and then did
                // nothing must read with a snapshot taken after that one committed.
                try await client.query(
                    "INSERT INTO agent_payments_settings (name, value) VALUES ('callback_key', \(fresh)) ON CONFLICT (name) DO NOTHING",
                    logger: logger)
                let rows = try await client.query(
                    "SELECT value FROM agent_payments_settings WHERE name = 'callback_key'", logger: logger)
                for try await value in rows.decode(String.self) { return value }
                return nil
            }
        } catch {
            throw PostgresStoreError.from(error)
        }
        guard let stored else { throw .unreadable("the shared callback key could not be stored") }
        return Secret(stored)
    }

    /// The callback key every replica shares: read once (``sharedCallbackKey()``, normally by
    /// ``prepare(waitingUpTo:)`` before the host listens) and kept.
    public func callbackKey() async throws -> Secret {
        if let known = key.withLock({ $0 }) { return known }
        let read = try await sharedCallbackKey()
        key.withLock { $0 = read }
        return read
    }

    /// Migrates, then returns the shared callback key (``sharedCallbackKey()``), retrying while the
    /// server cannot be reached, for up to `timeout`; the feed listens by then too. A schema newer
    /// than this build, or a server that refuses, fails at once.
    public func prepare(waitingUpTo timeout: Duration) async throws(PostgresStoreError) -> Secret {
        try await retrying(for: timeout) { [self] () async throws(PostgresStoreError) in
            try await migrate()
            let key = try await sharedCallbackKey()
            self.key.withLock { $0 = key }
            _ = await feed.listening(waitingUpTo: .seconds(10))
            return key
        }
    }

    /// ``migrate()``, retrying while the server cannot be reached, for up to `timeout`: what
    /// `agent-payments migrate` runs. The versions applied.
    public func migrate(waitingUpTo timeout: Duration) async throws(PostgresStoreError) -> [Int] {
        try await retrying(for: timeout) { [self] () async throws(PostgresStoreError) in try await migrate() }
    }

    /// `attempt` until it succeeds, fails otherwise than unreachable, or `timeout` passes (then
    /// the last attempt's reason, not the timer's, is thrown, saying how long it was retried).
    private func retrying<T: Sendable>(
        for timeout: Duration,
        _ attempt: @escaping @Sendable () async throws(PostgresStoreError) -> T
    ) async throws(PostgresStoreError) -> T {
        let lastFailure = Mutex<PostgresStoreError?>(nil)
        do {
            return try await withTimeout(timeout) { [self] in
                var delay: Duration = .milliseconds(100)
                while true {
                    do throws(PostgresStoreError) {
                        return try await attempt()
                    } catch {
                        guard case .unreachable = error, !Task.isCancelled else { throw error }
                        lastFailure.withLock { $0 = error }
                        logger.warning(
                            "PostgreSQL is not reachable yet; retrying",
                            metadata: ["database": "\(configuration)", "reason": "\(error)"])
                        try await Task.sleep(for: delay)
                        delay = min(delay * 2, .seconds(2))
                    }
                }
            }
        } catch {
            let failure = PostgresStoreError.from(error)
            // The timer's answer: the last attempt's reason says more.
            guard case .unreachable = failure, case .unreachable(let reason)? = lastFailure.withLock({ $0 }) else {
                throw failure
            }
            throw PostgresStoreError.unreachable("\(reason), still after \(timeout) of retries")
        }
    }
}

/// Why a database could not be used: a sentence for the operator, and the status a command
/// exits with (75, EX_TEMPFAIL, when it cannot be reached: worth retrying once it is back; 1
/// otherwise, such as a schema newer than this build).
public struct DatabaseUnusable: Error, Sendable, CustomStringConvertible {
    public let description: String
    public let exitStatus: Int32
}
