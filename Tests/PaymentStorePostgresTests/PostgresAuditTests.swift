import Foundation
import Logging
import PaymentFlow
import PaymentStorePostgres
import PostgresNIO
import Testing

/// The audit table on a real PostgreSQL: one chain for every replica, appends in batches,
/// changes refused by the table itself, and tampering found by `verify`.
@Suite(.postgreSQL) struct PostgresAuditTests {
    static let logger = Logger(label: "test")

    /// Whether the whole trail holds, `count` records long.
    static func holds(_ database: PostgresPaymentDatabase, _ count: Int64) async throws -> Bool {
        #expect(await database.audit.flush(within: .seconds(30)), "the writer keeps up")
        let (checked, broken) = try await database.audit.verify()
        return checked == count && broken == nil
    }

    static func entry(_ index: Int, replica: String) -> AuditEntry {
        AuditEntry(
            replica: replica, actor: "token:alice", action: AuditAction.paymentCapture.rawValue, outcome: "ok",
            callSID: "CA" + String(repeating: "1", count: 32), paymentSID: "PK" + String(repeating: "a", count: 32),
            origin: "192.0.2.7", detail: "record \(index)")
    }

    @Test func replicasAppendingAtOnceMakeOneUnbrokenChain() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url, label: "a") { a async throws in
                try await withRunningDatabase(url, label: "b") { b async throws in
                    // 2 × 60 appends at once, from two instances (two replicas' pools and lock queues).
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for index in 0..<60 {
                            group.addTask { try await a.audit.append(Self.entry(index, replica: "a")) }
                            group.addTask { try await b.audit.append(Self.entry(index, replica: "b")) }
                        }
                        try await group.waitForAll()
                    }
                    #expect(await a.audit.flush(within: .seconds(30)))
                    #expect(await b.audit.flush(within: .seconds(30)))
                    let (checked, broken) = try await a.audit.verify()
                    #expect(checked == 120 && broken == nil, "\(String(describing: broken))")
                    var count: Int64 = 0
                    for try await row in try await a.client.query(
                        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM agent_payments_audit"
                    ).decode((Int64, Int64, Int64, Int64).self) {
                        #expect(row.1 == 120 && row.2 == 1 && row.3 == 120)
                        count = row.0
                    }
                    #expect(count == 120)
                }
            }
        }
    }

    @Test func aRecordWrittenTwiceIsKeptOnce() async throws {
        // What a batch retried after its commit's answer was lost looks like to the table.
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                let entry = Self.entry(0, replica: "a")
                try await database.audit.append(entry)
                try await database.audit.append(entry)
                try await database.audit.append(Self.entry(1, replica: "a"))
                #expect(try await Self.holds(database, 2))
            }
        }
    }

    @Test func theTableRefusesChangesAndTamperingIsFound() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            try await withRunningDatabase(url) { database async throws in
                for index in 0..<5 { try await database.audit.append(Self.entry(index, replica: "a")) }
                #expect(try await Self.holds(database, 5))

                // The application's ordinary statements cannot change or remove a record.
                for statement: PostgresQuery in [
                    "UPDATE agent_payments_audit SET outcome = 'refused' WHERE seq = 2",
                    "DELETE FROM agent_payments_audit WHERE seq = 2",
                    "TRUNCATE agent_payments_audit",
                ] {
                    await #expect(throws: (any Error).self) { try await database.client.query(statement) }
                }
                #expect(try await Self.holds(database, 5))

                // A superuser who skips the triggers can; verify names the record.
                try await database.client.withConnection { connection in
                    try await connection.query("SET session_replication_role = replica", logger: Self.logger)
                    try await connection.query(
                        "UPDATE agent_payments_audit SET actor = 'token:mallory' WHERE seq = 3", logger: Self.logger)
                    try await connection.query("SET session_replication_role = DEFAULT", logger: Self.logger)
                }
                #expect(await database.audit.pending == 0)
                let altered = try await database.audit.verify()
                #expect(altered.checked == 2 && altered.broken?.sequence == 3)
                #expect(altered.broken?.reason.contains("altered") == true)

                try await database.client.withConnection { connection in
                    try await connection.query("SET session_replication_role = replica", logger: Self.logger)
                    try await connection.query(
                        "UPDATE agent_payments_audit SET actor = 'token:alice' WHERE seq = 3", logger: Self.logger)
                    try await connection.query("DELETE FROM agent_payments_audit WHERE seq = 4", logger: Self.logger)
                    try await connection.query("SET session_replication_role = DEFAULT", logger: Self.logger)
                }
                let removed = try await database.audit.verify()
                #expect(removed.broken?.sequence == 5 && removed.broken?.reason.contains("missing") == true)
            }
        }
    }
}

/// The deployment page's role: replicas that own nothing start on a current schema, work, and
/// may append to the audit trail but not change it.
@Suite(.postgreSQL) struct ApplicationRoleTests {
    /// Docs/deployment.md's grants, for `role`.
    static func grants(_ role: String) -> [String] {
        [
            """
            GRANT SELECT, INSERT, UPDATE, DELETE ON agent_payments_sessions, agent_payments_outbox,
                agent_payments_spending, agent_payments_amounts_due, agent_payments_settings TO \(role)
            """,
            "GRANT SELECT ON agent_payments_schema_migrations TO \(role)",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO \(role)",
            "GRANT SELECT, INSERT ON agent_payments_audit TO \(role)",
        ]
    }

    /// A new login role on `url`'s database with the deployment page's grants, then `adjust`'s
    /// statements for it; returns its name and `url` signed in as it.
    static func applicationRole(
        on url: String, then adjust: (String) -> [String] = { _ in [] }
    ) async throws -> (role: String, url: URLComponents) {
        let role = "payments_app_" + UUID().uuidString.prefix(8).lowercased()
        let password = UUID().uuidString
        try await withRunningDatabase(url) { owner async throws in
            try await owner.client.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(role) LOGIN PASSWORD '\(password)'"))
            for statement in grants(role) + adjust(role) {
                try await owner.client.query(PostgresQuery(unsafeSQL: statement))
            }
        }
        var components = try #require(URLComponents(string: url))
        components.user = role
        components.password = password
        return (role, components)
    }

    /// The store's statements are prepared once per connection, and PostgresNIO remembers a
    /// refused preparation on its connection until it closes. PostgreSQL checks privileges when a
    /// statement runs, not when it is prepared, so a privilege granted after a refusal works at the
    /// next request (one pooled connection here: the second request runs where the first failed).
    @Test func aPrivilegeGrantedAfterARefusalWorksAtTheNextRequest() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            let (role, signedIn) = try await Self.applicationRole(on: url) {
                ["REVOKE SELECT ON agent_payments_sessions FROM \($0)"]
            }
            var components = signedIn
            components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "pool_max", value: "1")]
            try await withRunningDatabase(try #require(components.string)) { app async throws in
                await #expect(throws: PaymentStoreError.self, "SELECT is not granted") {
                    try await app.store.session(id: "nobody")
                }
                _ = try await withRunningDatabase(url) { owner async throws in
                    try await owner.client.query(
                        PostgresQuery(unsafeSQL: "GRANT SELECT ON agent_payments_sessions TO \(role)"))
                }
                #expect(try await app.store.session(id: "nobody") == nil, "granted: the read works")
            }
        }
    }

    @Test func aRoleThatOnlyAppendsToTheTrailStartsWorksAndCannotChangeIt() async throws {
        try await ThrowawayCluster.withDatabase { url async throws in
            let (_, components) = try await Self.applicationRole(on: url)
            try await withRunningDatabase(try #require(components.string)) { app async throws in
                try await app.audit.append(PostgresAuditTests.entry(0, replica: "app"))
                #expect(try await PostgresAuditTests.holds(app, 1))
                _ = try await app.store.activeSessions()
                do {
                    try await app.client.query("UPDATE agent_payments_audit SET outcome = 'x'")
                    Issue.record("the application role changed an audit record")
                } catch let error as PSQLError {
                    #expect(error.serverInfo?[.sqlState] == "42501", "permission denied, not only the trigger")
                }
            }
        }
    }
}
