public import Foundation
public import Logging
public import PaymentFlow
public import PostgresNIO
public import TwilioPayments

/// Daily totals and amounts due in PostgreSQL, shared by every replica: the ``SpendingLedger``
/// of `agent-payments` when `DATABASE_URL` is set.
///
/// A reservation is one statement: an upsert on (principal, day, currency) whose update only
/// happens while the new total stays within the limit, so two replicas charging for one
/// principal at once cannot together pass it. Amounts are `numeric`, never floating point.
public final class PostgresSpendingLedger: SpendingLedger, Sendable {
    let client: PostgresClient
    let logger: Logger
    let requestTimeout: Duration
    /// The clock ``requestTimeout`` is measured on.
    let clock: any Clock<Duration>

    /// A ledger on `client`, which must be running and migrated (``PostgresMigrations``).
    /// A request fails as unreachable after `requestTimeout`, measured on `clock`.
    public init(
        client: PostgresClient, requestTimeout: Duration = .seconds(2), clock: any Clock<Duration> = ContinuousClock(),
        logger: Logger
    ) {
        self.client = client
        self.requestTimeout = requestTimeout
        self.clock = clock
        self.logger = logger
    }

    public func reserve(
        principal: String, day: String, currency: String, amount: Decimal, limit: Decimal
    ) async throws(PaymentStoreError)
        -> (spentBefore: Decimal, reserved: Bool)
    {
        let amountText = SpendingPolicy.text(amount), limitText = SpendingPolicy.text(limit)
        let texts = try await strings(
            """
            WITH reserved AS (
                INSERT INTO agent_payments_spending AS s (principal, day, currency, total)
                SELECT \(principal), \(day)::date, \(currency), \(amountText)::numeric WHERE \(amountText)::numeric <= \(limitText)::numeric
                ON CONFLICT (principal, day, currency) DO UPDATE SET total = s.total + EXCLUDED.total
                    WHERE s.total + EXCLUDED.total <= \(limitText)::numeric
                RETURNING (total - \(amountText)::numeric)::text AS before)
            SELECT 'reserved ' || before FROM reserved
            UNION ALL
            SELECT 'refused ' || coalesce((SELECT total::text FROM agent_payments_spending
                WHERE principal = \(principal) AND day = \(day)::date AND currency = \(currency)), '0')
            WHERE NOT EXISTS (SELECT 1 FROM reserved)
            """)
        guard let text = texts.first else { throw PaymentStoreError("the spending ledger gave no answer") }
        let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, let spent = SpendingPolicy.decimal(parts[1]) else {
            throw PaymentStoreError("the spending ledger's answer is unreadable")
        }
        return (spent, parts[0] == "reserved")
    }

    public func release(
        principal: String, day: String, currency: String, amount: Decimal
    ) async throws(PaymentStoreError) {
        let amountText = SpendingPolicy.text(amount)
        _ = try await strings(
            """
            UPDATE agent_payments_spending SET total = greatest(total - \(amountText)::numeric, 0)
            WHERE principal = \(principal) AND day = \(day)::date AND currency = \(currency) RETURNING total::text
            """)
    }

    public func setAmountDue(_ due: AmountDue, onCall callSID: CallSID) async throws(PaymentStoreError) {
        _ = try await strings(
            """
            INSERT INTO agent_payments_amounts_due (call_sid, amount, currency, registered_by, tenant, expires_at)
            VALUES (\(callSID.rawValue), \(due.amount)::numeric, \(due.currency), \(due.registeredBy?.principal), \(due.registeredBy?.tenant), \(due.expiresAt))
            ON CONFLICT (call_sid) DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                registered_by = EXCLUDED.registered_by, tenant = EXCLUDED.tenant, expires_at = EXCLUDED.expires_at
            RETURNING call_sid
            """)
    }

    public func amountDue(onCall callSID: CallSID, now: Date) async throws(PaymentStoreError) -> AmountDue? {
        let rows: [(String, String, String?, String?, Date)]
        do {
            rows = try await withTimeout(requestTimeout, on: clock) { [client, logger] in
                var rows: [(String, String, String?, String?, Date)] = []
                let query: PostgresQuery = """
                    SELECT amount::text, currency, registered_by, tenant, expires_at FROM agent_payments_amounts_due
                    WHERE call_sid = \(callSID.rawValue) AND expires_at > \(now)
                    """
                for try await row in try await client.query(query, logger: logger).decode(
                    (String, String, String?, String?, Date).self)
                {
                    rows.append(row)
                }
                return rows
            }
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
        guard let (amount, currency, principal, tenant, expiresAt) = rows.first else { return nil }
        return AmountDue(
            amount: amount, currency: currency,
            registeredBy: principal.map { PaymentOwner(principal: $0, tenant: tenant) },
            expiresAt: expiresAt)
    }

    public func clearAmountDue(onCall callSID: CallSID) async throws(PaymentStoreError) {
        _ = try await strings(
            "DELETE FROM agent_payments_amounts_due WHERE call_sid = \(callSID.rawValue) RETURNING call_sid")
    }

    public func expire(before day: String, now: Date) async throws(PaymentStoreError) -> Int {
        let spent = try await strings(
            "DELETE FROM agent_payments_spending WHERE day < \(day)::date RETURNING principal")
        let due = try await strings(
            "DELETE FROM agent_payments_amounts_due WHERE expires_at <= \(now) RETURNING call_sid")
        return spent.count + due.count
    }

    private func strings(_ query: PostgresQuery) async throws(PaymentStoreError) -> [String] {
        do {
            return try await withTimeout(requestTimeout, on: clock) { [client, logger] in
                var texts: [String] = []
                for try await text in try await client.query(query, logger: logger).decode(String.self) {
                    texts.append(text)
                }
                return texts
            }
        } catch {
            throw PaymentStoreError(PostgresStoreError.from(error).description)
        }
    }
}
