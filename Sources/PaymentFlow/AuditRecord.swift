import Crypto
import Foundation

/// An ``AuditEntry`` as stored: its place in the trail and the hashes that chain it to the
/// record before, so a removed, inserted or altered record is found by ``AuditRecord/verify(_:)``.
///
/// `hash = SHA-256(previousHash ‖ the entry's fields, each length-prefixed)`, hex encoded; the
/// first record's `previousHash` is 64 zeros. One chain per trail, whichever replicas write to it.
public struct AuditRecord: Sendable, Hashable, Codable {
    /// 1 for the first record, then one more for each.
    public var sequence: Int64
    public var entry: AuditEntry
    public var previousHash: String
    public var hash: String

    /// The record that follows `previous` (or starts the trail) with `entry`.
    public init(entry: AuditEntry, after previous: (sequence: Int64, hash: String)?) {
        self.entry = entry
        sequence = (previous?.sequence ?? 0) + 1
        previousHash = previous?.hash ?? Self.genesis
        hash = Self.hash(sequence: sequence, entry: entry, previousHash: previousHash)
    }

    /// A record as read back, hashes as stored (``verify(_:)`` judges them).
    public init(sequence: Int64, entry: AuditEntry, previousHash: String, hash: String) {
        self.sequence = sequence
        self.entry = entry
        self.previousHash = previousHash
        self.hash = hash
    }

    /// The previous hash of the first record.
    public static let genesis = String(repeating: "0", count: 64)

    static func hash(sequence: Int64, entry: AuditEntry, previousHash: String) -> String {
        var text = "agent-payments-audit-v1\n" + previousHash
        for field in [
            String(sequence), String(entry.atMilliseconds), entry.replica, entry.actor, entry.action, entry.outcome,
            entry.callSID, entry.paymentSID, entry.origin, entry.detail, entry.id,
        ] {
            // Length-prefixed, and absent distinct from empty: no two entries hash the same text.
            text += field.map { "\n\($0.utf8.count):\($0)" } ?? "\n-"
        }
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Checks `records` (in sequence order, the whole trail from its first record): each one's
    /// sequence follows, its previous hash is the hash before, and its hash is its content's.
    /// Returns the first break, or `nil` when the chain holds. A trail cut short at its end
    /// cannot be told from a shorter one: keep its newest hash elsewhere too (Docs/operations.md).
    public static func verify(_ records: some Sequence<AuditRecord>) -> AuditBreak? {
        var check = AuditChainCheck()
        for record in records {
            if let broken = check.next(record) { return broken }
        }
        return nil
    }
}
