public import Foundation

/// One action on a payment system, or one refusal of one, as the audit trail records it (PCI
/// DSS requirement 10): who, what, when, the outcome, which call and payment, from where, and
/// which replica. Never card data, tokens or secrets: SIDs, principals' names, masked or coded
/// outcomes only.
public struct AuditEntry: Sendable, Hashable, Codable {
    /// The record's own id (a UUID): a store that retries a write keeps it once.
    public var id: String
    /// When it happened, to the millisecond (what the chain hashes).
    public var atMilliseconds: Int64
    /// The replica that recorded it.
    public var replica: String
    /// Who acted: a principal's id (`token:alice@acme`), `twilio` for callbacks, `system` for
    /// what the server does by itself (start-up, expiry, a call found ended).
    public var actor: String
    /// What was done (``AuditAction``'s raw values, or a host's own).
    public var action: String
    /// `ok`, `repeated`, or `refused: <reason>` / `failed: <reason>`.
    public var outcome: String
    public var callSID: String?
    public var paymentSID: String?
    /// Where the request came from (a client's address), when known.
    public var origin: String?
    /// A bounded, non-secret detail (the item captured, a configuration summary).
    public var detail: String?

    public init(
        at time: Date = Date(), replica: String, actor: String, action: String, outcome: String,
        callSID: String? = nil, paymentSID: String? = nil, origin: String? = nil, detail: String? = nil,
        id: String = UUID().uuidString.lowercased()
    ) {
        self.id = id
        atMilliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.down))
        self.replica = replica
        self.actor = actor
        self.action = action
        self.outcome = outcome
        self.callSID = callSID
        self.paymentSID = paymentSID
        self.origin = origin
        self.detail = detail.map { String($0.prefix(512)) }
    }

    /// When it happened (the middle of its millisecond, so that formatting, which truncates,
    /// shows the millisecond recorded).
    public var time: Date { Date(timeIntervalSince1970: (Double(atMilliseconds) + 0.5) / 1000) }
}
