import Foundation

/// The one-line JSON form of a record: `{"type":"audit","seq":…,"at":"…","at_ms":…,…,"prev":"…","hash":"…"}`,
/// so a shipper can pick audit lines out of a log stream by `type`.
public enum AuditLine {
    private struct Line: Codable {
        var type = "audit"
        var id: String
        var seq: Int64
        var at: String
        var at_ms: Int64
        var replica: String
        var actor: String
        var action: String
        var outcome: String
        var call_sid: String?
        var payment_sid: String?
        var origin: String?
        var detail: String?
        var prev: String
        var hash: String
    }

    /// `record` as one line of JSON, without its line feed.
    public static func encode(_ record: AuditRecord) -> String {
        let entry = record.entry
        let line = Line(
            id: entry.id, seq: record.sequence,
            at: entry.time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            at_ms: entry.atMilliseconds, replica: entry.replica, actor: entry.actor, action: entry.action,
            outcome: entry.outcome, call_sid: entry.callSID, payment_sid: entry.paymentSID, origin: entry.origin,
            detail: entry.detail, prev: record.previousHash, hash: record.hash)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The record a line holds, or `nil` for a line that is not an audit record (a log line).
    public static func decode(_ text: some StringProtocol) -> AuditRecord? {
        guard text.contains("\"audit\""),
            let line = try? JSONDecoder().decode(Line.self, from: Data(text.utf8)), line.type == "audit"
        else { return nil }
        var entry = AuditEntry(
            replica: line.replica, actor: line.actor, action: line.action, outcome: line.outcome,
            callSID: line.call_sid, paymentSID: line.payment_sid, origin: line.origin, detail: line.detail, id: line.id)
        entry.atMilliseconds = line.at_ms
        entry.detail = line.detail
        return AuditRecord(sequence: line.seq, entry: entry, previousHash: line.prev, hash: line.hash)
    }

    /// The audit records in `text` (JSON lines, other lines skipped), in the order written.
    public static func records(in text: String) -> [AuditRecord] {
        text.split(separator: "\n").compactMap { decode($0) }
    }
}
