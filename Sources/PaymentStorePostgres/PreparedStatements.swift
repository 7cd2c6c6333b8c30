import Foundation
import PaymentFlow
import PostgresNIO

// The statements every callback, status read and change-feed re-read runs, prepared once per
// connection (PostgresNIO keeps them by name on each pooled connection): the server parses,
// analyses and plans each of them once instead of for every request, which was ~40 % of its CPU
// under the callback load (Docs/benchmarks.md). Their parameter types are given, so that a
// session's JSON is sent as text and cast by the statement, as the unprepared queries do.
//
// Each is named by a constant (PostgresNIO's default name is `String(reflecting:)` of the type,
// worked out again for every request it runs).
//
// Behind a pooler in transaction mode, named statements need PgBouncer 1.21 or later
// (`max_prepared_statements`); Docs/deployment.md says so.

/// A session's stored JSON found by one key column.
protocol SessionLookup: PostgresPreparedStatement where Row == String {
    var key: String { get }
}

extension SessionLookup {
    static var bindingDataTypes: [PostgresDataType] { [.text] }

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(key)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String {
        try row.decode(String.self)
    }
}

/// The session with this id.
struct SessionByID: SessionLookup {
    static let name = "PaymentStorePostgres.SessionByID"
    static let sql = "SELECT session::text FROM agent_payments_sessions WHERE id = $1"
    var key: String
}

/// The session with this payment SID.
struct SessionByPaymentSID: SessionLookup {
    static let name = "PaymentStorePostgres.SessionByPaymentSID"
    static let sql = "SELECT session::text FROM agent_payments_sessions WHERE payment_sid = $1"
    var key: String
}

/// The session whose callback URL's secret has this hash.
struct SessionBySecretHash: SessionLookup {
    static let name = "PaymentStorePostgres.SessionBySecretHash"
    static let sql = "SELECT session::text FROM agent_payments_sessions WHERE callback_secret_hash = $1"
    var key: String
}

/// The sessions with these ids, with when each last changed (the change feed's re-read).
struct SessionsChanged: PostgresPreparedStatement {
    static let name = "PaymentStorePostgres.SessionsChanged"
    static let sql = "SELECT session::text, changed_at FROM agent_payments_sessions WHERE id = ANY($1)"
    static let bindingDataTypes: [PostgresDataType] = [.textArray]
    typealias Row = (String, Date)
    var ids: [String]

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(ids)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}

/// The compare-and-set of a stored session on its version, with the `NOTIFY` of the change, and
/// with ``UpdateSessionQueuing`` the outbox messages of its notices: one statement, one
/// transaction. A row comes back only when the session was stored.
struct UpdateSession: PostgresPreparedStatement {
    static let name = "PaymentStorePostgres.UpdateSession"
    static let update = """
        WITH changed AS (
            UPDATE agent_payments_sessions SET payment_sid = $1, callback_secret_hash = $2,
                phase = $3, finished = $4, version = $5,
                in_flight = $6::jsonb, session = $7::jsonb, updated_at = $8,
                change_seq = nextval('agent_payments_change_seq'), changed_at = clock_timestamp()
            WHERE id = $9 AND version = $10
            RETURNING id, version, change_seq)
        """
    static let notify =
        "\nSELECT pg_notify('\(PostgresChangeFeed.channel)', id || ' ' || version || ' ' || change_seq) FROM changed"
    static let sql = update + notify
    static let bindingDataTypes: [PostgresDataType] = [
        .text, .text, .text, .bool, .int8, .text, .text, .timestamptz, .text, .int8,
    ]
    typealias Row = Bool

    var paymentSID: String?
    var callbackSecretHash: String
    var phase: String
    var finished: Bool
    var version: Int64
    var inFlight: String
    var session: String
    var updatedAt: Date
    var id: String
    var expectedVersion: Int64

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 10)
        bindings.append(paymentSID)
        bindings.append(callbackSecretHash)
        bindings.append(phase)
        bindings.append(finished)
        bindings.append(version)
        bindings.append(inFlight)
        bindings.append(session)
        bindings.append(updatedAt)
        bindings.append(id)
        bindings.append(expectedVersion)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Bool { true }
}

/// ``UpdateSession`` with outbox messages, appended to `agent_payments_outbox` in their order
/// only if the session was stored (``PostgresPaymentStore/appendOutbox(_:to:)`` for the shape).
struct UpdateSessionQueuing: PostgresPreparedStatement {
    static let name = "PaymentStorePostgres.UpdateSessionQueuing"
    static let sql = UpdateSession.update + PostgresPaymentStore.outboxCTE(firstParameter: 11) + UpdateSession.notify
    static let bindingDataTypes: [PostgresDataType] =
        UpdateSession.bindingDataTypes + Array(repeating: .textArray, count: 5)
    typealias Row = Bool

    var update: UpdateSession
    var messages: [OutboxMessage]

    func makeBindings() -> PostgresBindings {
        var bindings = update.makeBindings()
        bindings.append(messages.map(\.destination))
        bindings.append(messages.map(\.id))
        bindings.append(messages.map(\.payment))
        bindings.append(messages.map(\.type))
        bindings.append(messages.map { String(decoding: $0.body, as: UTF8.self) })
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Bool { true }
}

/// Several ``UpdateSession``s in one statement (``GroupCommit``): each row's compare-and-set on
/// its own version and its own `NOTIFY`, one transaction for them all. Rows come back for the
/// sessions stored, by id. The rows are bound sorted by id, so that two statements updating the
/// same sessions mostly lock them in the same order (the plan decides; a deadlock PostgreSQL
/// reports anyway is retried write by write by `PostgresPaymentStore.storeTogether`).
struct UpdateSessions: PostgresPreparedStatement {
    static let name = "PaymentStorePostgres.UpdateSessions"
    static let sql = """
        WITH changed AS (
            UPDATE agent_payments_sessions AS s SET payment_sid = NULLIF(v.payment_sid, ''),
                callback_secret_hash = v.callback_secret_hash, phase = v.phase, finished = v.finished,
                version = v.version, in_flight = v.in_flight::jsonb, session = v.session::jsonb,
                updated_at = v.updated_at,
                change_seq = nextval('agent_payments_change_seq'), changed_at = clock_timestamp()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int8[], $6::text[], $7::text[],
                    $8::timestamptz[], $9::text[], $10::int8[])
                AS v(payment_sid, callback_secret_hash, phase, finished, version, in_flight, session, updated_at,
                    id, expected)
            WHERE s.id = v.id AND s.version = v.expected
            RETURNING s.id, s.version, s.change_seq)
        SELECT id, pg_notify('\(PostgresChangeFeed.channel)', id || ' ' || version || ' ' || change_seq)::text FROM changed
        """
    static let bindingDataTypes: [PostgresDataType] = [
        .textArray, .textArray, .textArray, .boolArray, .int8Array, .textArray, .textArray, .timestamptzArray,
        .textArray, .int8Array,
    ]
    typealias Row = String

    /// The writes, in the order they are bound (by id).
    var updates: [UpdateSession]

    init(_ updates: [UpdateSession]) {
        self.updates = updates.sorted { $0.id < $1.id }
    }

    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 10)
        // A session without a payment SID is bound as '' (arrays of optionals have no encoding
        // here); SIDs are never empty, and the statement reads '' back as NULL.
        bindings.append(updates.map { $0.paymentSID ?? "" })
        bindings.append(updates.map(\.callbackSecretHash))
        bindings.append(updates.map(\.phase))
        bindings.append(updates.map(\.finished))
        bindings.append(updates.map(\.version))
        bindings.append(updates.map(\.inFlight))
        bindings.append(updates.map(\.session))
        bindings.append(updates.map(\.updatedAt))
        bindings.append(updates.map(\.id))
        bindings.append(updates.map(\.expectedVersion))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> String {
        try row.decode((String, String).self).0
    }
}
