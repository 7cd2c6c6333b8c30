/// ``AuditRecord/verify(_:)`` one record at a time, for trails read as a stream.
public struct AuditChainCheck: Sendable {
    private var previous: (sequence: Int64, hash: String) = (0, AuditRecord.genesis)

    public init() {}

    /// How many records have been checked and held.
    public var checked: Int64 { previous.sequence }

    /// Checks the next record of the trail; the break it makes, or `nil`.
    public mutating func next(_ record: AuditRecord) -> AuditBreak? {
        if record.sequence != previous.sequence + 1 {
            return AuditBreak(
                sequence: record.sequence,
                reason: "expected record \(previous.sequence + 1) here: a record is missing or out of place")
        }
        if record.previousHash != previous.hash {
            return AuditBreak(
                sequence: record.sequence,
                reason:
                    "its previous hash is not record \(previous.sequence)'s: a record before it was changed or removed")
        }
        let expected = AuditRecord.hash(
            sequence: record.sequence, entry: record.entry, previousHash: record.previousHash)
        if record.hash != expected {
            return AuditBreak(sequence: record.sequence, reason: "its content does not match its hash: it was altered")
        }
        previous = (record.sequence, record.hash)
        return nil
    }
}

/// Where an audit trail's chain breaks first, and why.
public struct AuditBreak: Error, Sendable, Equatable, CustomStringConvertible {
    public var sequence: Int64
    public var reason: String

    public init(sequence: Int64, reason: String) {
        self.sequence = sequence
        self.reason = reason
    }

    public var description: String { "the audit trail breaks at record \(sequence): \(reason)" }
}
