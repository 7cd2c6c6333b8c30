public import Logging
public import PostgresNIO

/// The schema, as numbered migrations applied in order, each once. All pending migrations run
/// in one transaction that first takes a transaction-level advisory lock, so replicas starting
/// together apply them once (the others wait on the lock, then find nothing left to do), and a
/// migration that fails leaves the schema as it was.
public enum PostgresMigrations {
    /// One step of the schema.
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var statements: [String]
    }

    /// The key of the advisory lock migrations hold (any constant unlikely to clash: "agentpay").
    static let lockKey: Int64 = 0x6167_656e_7470_6179

    /// Every migration, oldest first. Append only: a published migration never changes.
    public static let all: [Migration] = [
        Migration(
            version: 1, name: "payment sessions, change sequence, settings",
            statements: [
                """
                CREATE TABLE agent_payments_sessions (
                    id text PRIMARY KEY,
                    payment_sid text UNIQUE,
                    call_sid text NOT NULL,
                    callback_secret_hash text NOT NULL,
                    phase text NOT NULL,
                    finished boolean NOT NULL,
                    version bigint NOT NULL CHECK (version > 0),
                    in_flight jsonb NOT NULL,
                    session jsonb NOT NULL,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    change_seq bigint NOT NULL,
                    changed_at timestamptz NOT NULL
                )
                """,
                "CREATE SEQUENCE agent_payments_change_seq",
                // One unfinished session per call, across every replica.
                "CREATE UNIQUE INDEX agent_payments_sessions_open_call ON agent_payments_sessions (call_sid) WHERE NOT finished",
                "CREATE INDEX agent_payments_sessions_secret ON agent_payments_sessions (callback_secret_hash)",
                "CREATE INDEX agent_payments_sessions_call ON agent_payments_sessions (call_sid, created_at DESC)",
                "CREATE INDEX agent_payments_sessions_expiry ON agent_payments_sessions (updated_at) WHERE finished",
                "CREATE INDEX agent_payments_sessions_changed ON agent_payments_sessions (changed_at)",
                "CREATE TABLE agent_payments_settings (name text PRIMARY KEY, value text NOT NULL)",
            ]),
        Migration(
            version: 2, name: "spending per principal and day, amounts due",
            statements: [
                """
                CREATE TABLE agent_payments_spending (
                    principal text NOT NULL,
                    day date NOT NULL,
                    currency text NOT NULL,
                    total numeric NOT NULL CHECK (total >= 0),
                    PRIMARY KEY (principal, day, currency)
                )
                """,
                """
                CREATE TABLE agent_payments_amounts_due (
                    call_sid text PRIMARY KEY,
                    amount numeric NOT NULL CHECK (amount > 0),
                    currency text NOT NULL,
                    registered_by text,
                    tenant text,
                    expires_at timestamptz NOT NULL
                )
                """,
            ]),
        Migration(
            version: 3, name: "webhook outbox",
            statements: [
                """
                CREATE TABLE agent_payments_outbox (
                    seq bigserial PRIMARY KEY,
                    destination text NOT NULL,
                    event_id text NOT NULL,
                    payment_id text NOT NULL,
                    type text NOT NULL,
                    body text NOT NULL,
                    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
                    attempts integer NOT NULL DEFAULT 0,
                    since timestamptz NOT NULL DEFAULT clock_timestamp(),
                    due_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                    lease_owner text,
                    lease_until timestamptz,
                    last_error text,
                    finished_at timestamptz,
                    UNIQUE (destination, event_id)
                )
                """,
                // What claims scan: each destination's pending messages, by payment and in order.
                "CREATE INDEX agent_payments_outbox_pending ON agent_payments_outbox (destination, seq) WHERE state = 'pending'",
                "CREATE INDEX agent_payments_outbox_payment ON agent_payments_outbox (destination, payment_id, seq) WHERE state = 'pending'",
                "CREATE INDEX agent_payments_outbox_finished ON agent_payments_outbox (finished_at) WHERE state <> 'pending'",
            ]),
        Migration(
            version: 4, name: "audit trail",
            statements: [
                // One hash chain (PaymentFlow's AuditRecord), appended by every replica (the sequence key
                // orders appends). The application role should only INSERT and SELECT here
                // (Docs/deployment.md); the trigger refuses changes even to the table's owner.
                """
                CREATE TABLE agent_payments_audit (
                    seq bigint PRIMARY KEY CHECK (seq > 0),
                    entry_id text NOT NULL UNIQUE,
                    at_ms bigint NOT NULL,
                    at timestamptz GENERATED ALWAYS AS (to_timestamp(at_ms / 1000.0)) STORED,
                    replica text NOT NULL,
                    actor text NOT NULL,
                    action text NOT NULL,
                    outcome text NOT NULL,
                    call_sid text,
                    payment_sid text,
                    origin text,
                    detail text,
                    prev_hash text NOT NULL,
                    hash text NOT NULL
                )
                """,
                "CREATE INDEX agent_payments_audit_payment ON agent_payments_audit (payment_sid) WHERE payment_sid IS NOT NULL",
                """
                CREATE FUNCTION agent_payments_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'agent_payments_audit is append-only';
                END
                $$
                """,
                """
                CREATE TRIGGER agent_payments_audit_no_change BEFORE UPDATE OR DELETE ON agent_payments_audit
                FOR EACH ROW EXECUTE FUNCTION agent_payments_audit_append_only()
                """,
                """
                CREATE TRIGGER agent_payments_audit_no_truncate BEFORE TRUNCATE ON agent_payments_audit
                FOR EACH STATEMENT EXECUTE FUNCTION agent_payments_audit_append_only()
                """,
            ]),
    ]

    /// The newest schema version this build knows.
    public static var latestVersion: Int { all.last?.version ?? 0 }

    /// Applies the migrations not yet applied; returns the versions it applied (empty when the
    /// schema was current). A database whose schema is newer than this build is refused.
    @discardableResult
    public static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            // No DDL at all on a current schema, so that replicas may run as a role that owns
            // nothing (Docs/deployment.md): even CREATE … IF NOT EXISTS needs CREATE on the schema.
            var exists = false
            for try await found in try await connection.query(
                "SELECT to_regclass('agent_payments_schema_migrations') IS NOT NULL", logger: logger
            ).decode(Bool.self) {
                exists = found
            }
            if !exists {
                try await connection.query(
                    """
                    CREATE TABLE agent_payments_schema_migrations (
                        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
            }
            var applied: Set<Int> = []
            for try await version in try await connection.query(
                "SELECT version FROM agent_payments_schema_migrations", logger: logger
            )
            .decode(Int.self) {
                applied.insert(version)
            }
            if let newest = applied.max(), newest > latestVersion {
                throw PostgresStoreError.schemaTooNew(found: newest, known: latestVersion)
            }
            var done: [Int] = []
            for migration in all where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO agent_payments_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                logger.notice(
                    "applied database migration",
                    metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
                done.append(migration.version)
            }
            return done
        }
    }
}
