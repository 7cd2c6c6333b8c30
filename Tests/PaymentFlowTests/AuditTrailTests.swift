import Foundation
import Synchronization
import Testing
@testable import PaymentFlow
import TwilioPayments

/// The audit trail's chain (PCI DSS 10): what the coordinator records, and that a removed,
/// altered or reordered record is found.
@Suite struct AuditTrailTests {
    /// Keeps every record in memory, chained as a real trail chains them.
    final class MemoryTrail: AuditTrail {
        let records = Mutex<[AuditRecord]>([])

        func append(_ entry: AuditEntry) throws(AuditTrailError) {
            records.withLock { $0.append(AuditRecord(entry: entry, after: $0.last.map { ($0.sequence, $0.hash) })) }
        }

        var all: [AuditRecord] { records.withLock { $0 } }
    }

    static func chain(_ count: Int) -> [AuditRecord] {
        var records: [AuditRecord] = []
        for index in 0..<count {
            let entry = AuditEntry(
                at: Sample.date.addingTimeInterval(Double(index)), replica: "r1", actor: "token:alice",
                action: AuditAction.paymentCapture.rawValue, outcome: "ok", callSID: Sample.call.rawValue,
                paymentSID: Sample.payment.rawValue, detail: "payment-card-number")
            records.append(AuditRecord(entry: entry, after: records.last.map { ($0.sequence, $0.hash) }))
        }
        return records
    }

    @Test func anIntactChainHolds() {
        let records = Self.chain(5)
        #expect(AuditRecord.verify(records) == nil)
        #expect(records.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(records[0].previousHash == AuditRecord.genesis && records[1].previousHash == records[0].hash)
        #expect(Set(records.map(\.hash)).count == 5)
    }

    @Test func anAlteredRecordIsFound() {
        var records = Self.chain(5)
        records[2].entry.outcome = "refused: spending policy"
        #expect(AuditRecord.verify(records)?.sequence == 3)
        #expect(AuditRecord.verify(records)?.reason.contains("altered") == true)
    }

    @Test func anAlteredRecordWhoseHashIsRecomputedBreaksTheNext() {
        var records = Self.chain(5)
        records[2].entry.actor = "token:mallory"
        records[2] = AuditRecord(
            sequence: 3, entry: records[2].entry, previousHash: records[2].previousHash,
            hash: AuditRecord(entry: records[2].entry, after: (2, records[1].hash)).hash)
        let broken = AuditRecord.verify(records)
        #expect(
            broken?.sequence == 4 && broken?.reason.contains("previous hash") == true, "\(String(describing: broken))")
    }

    @Test func aRemovedOrMovedRecordIsFound() {
        var removed = Self.chain(5)
        removed.remove(at: 1)
        #expect(AuditRecord.verify(removed)?.sequence == 3)
        let first = Self.chain(5)
        #expect(AuditRecord.verify(Array(first.dropFirst()))?.sequence == 2, "a trail cut at its start")
        var swapped = Self.chain(5)
        swapped.swapAt(1, 2)
        #expect(AuditRecord.verify(swapped)?.sequence == 3)
    }

    @Test func absentAndEmptyFieldsHashApart() {
        let absent = AuditEntry(at: Sample.date, replica: "r", actor: "a", action: "x", outcome: "ok", detail: nil)
        let empty = AuditEntry(at: Sample.date, replica: "r", actor: "a", action: "x", outcome: "ok", detail: "")
        #expect(AuditRecord(entry: absent, after: nil).hash != AuditRecord(entry: empty, after: nil).hash)
        // Field boundaries cannot be moved: "ab" + "c" is not "a" + "bc".
        let one = AuditEntry(at: Sample.date, replica: "ab", actor: "c", action: "x", outcome: "ok")
        let two = AuditEntry(at: Sample.date, replica: "a", actor: "bc", action: "x", outcome: "ok")
        #expect(AuditRecord(entry: one, after: nil).hash != AuditRecord(entry: two, after: nil).hash)
    }

    @Test func aFileTrailContinuesItsChainAndShowsTampering() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let entry = AuditEntry(at: Sample.date, replica: "r1", actor: "system", action: "test", outcome: "ok")
        let first = try JSONLinesAuditTrail(path: path)
        for _ in 0..<3 { try await first.append(entry) }
        // A log line between records (a file shared with logs) is skipped by the reader.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("2026-12-04T10:00:00Z info a log line\n".utf8))
        try handle.close()
        let second = try JSONLinesAuditTrail(path: path) // a restart
        try await second.append(entry)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let records = AuditLine.records(in: text)
        #expect(records.map(\.sequence) == [1, 2, 3, 4] && AuditRecord.verify(records) == nil)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        let tampered = text.replacingOccurrences(of: "\"seq\":2,", with: "\"seq\":2,\"x\":0,")
            .replacingOccurrences(of: "\"actor\":\"system\",\"at\"", with: "\"actor\":\"token:mallory\",\"at\"")
        #expect(AuditRecord.verify(AuditLine.records(in: tampered))?.sequence == 1)
    }

    @Test func aLongFileTrailIsContinuedFromItsEndWhateverTheWindowFinds() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let entry = AuditEntry(
            at: Sample.date, replica: "r1", actor: "system", action: "test", outcome: "ok",
            detail: String(repeating: "d", count: 300))
        let first = try JSONLinesAuditTrail(path: path)
        for _ in 0..<400 { try await first.append(entry) } // ~250 KiB, several windows
        // Then a long run of lines that are not records: the newest record lies beyond the first window.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(String(repeating: "a log line {\"type\":\"audit\"\n", count: 4000).utf8))
        try handle.close()
        let url = URL(fileURLWithPath: path)
        let newest = try #require(try JSONLinesAuditTrail.lastRecord(in: url))
        #expect(newest.0 == 400)
        // Windows so small that every one cuts a record: still the newest whole one.
        #expect(try JSONLinesAuditTrail.lastRecord(in: url, window: 100)?.0 == 400)
        let second = try JSONLinesAuditTrail(path: path)
        try await second.append(entry)
        let records = AuditLine.records(in: try String(contentsOfFile: path, encoding: .utf8))
        #expect(records.count == 401 && records.last?.sequence == 401 && AuditRecord.verify(records) == nil)
        // An empty file starts a chain.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(FileManager.default.createFile(atPath: empty.path, contents: nil))
        #expect(try JSONLinesAuditTrail.lastRecord(in: empty) == nil)
    }

    @Test func theCoordinatorRecordsCommandsRefusalsAndCallbacksWithoutCardData() async throws {
        let api = FakePaymentsAPI()
        let trail = MemoryTrail()
        let flow = PaymentCoordinator(
            api: api, callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.com/cb/"), audit: trail,
            replica: "replica-1", now: { Sample.date })
        let alice = PaymentActor(owner: PaymentOwner(principal: "token:alice", tenant: "acme"), origin: "192.0.2.7")
        let started = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "12.50", currency: "usd")),
            as: alice)
        let sid = try #require(started.session.paymentSID)
        _ = try await flow.perform(.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: false), as: alice)
        _ = try await flow.perform(.capture(.cardNumber, paymentSID: sid, callSID: nil, restart: false), as: alice)
        let secret = String(api.calls[0].statusCallback.split(separator: "/").last!)
        // The caller types: keypresses are progress, not recorded; the captured item is.
        for (masked, partial) in [("4xxx", "true"), ("41xx", "true"), ("xxxxxxxxxxxx4242", "false")] {
            let fields = ["Capture": "payment-card-number", "PartialResult": partial, "PaymentCardNumber": masked]
            #expect(try await flow.receiveCallback(secret: secret, Sample.callback(fields, sid: sid)))
        }
        let bob = PaymentActor(owner: PaymentOwner(principal: "token:bob"))
        await #expect(throws: FlowError.self) {
            _ = try await flow.perform(.cancel(paymentSID: sid, callSID: nil), as: bob)
        }
        _ = try await flow.perform(.cancel(paymentSID: sid, callSID: nil), as: alice)

        let records = trail.all
        #expect(AuditRecord.verify(records) == nil)
        let lines = records.map {
            [$0.entry.actor, $0.entry.action, $0.entry.outcome, $0.entry.detail ?? "-"].joined(separator: " | ")
        }
        #expect(
            lines == [
                "token:alice@acme | payment.start | ok | credit-card charge 12.50 usd",
                "token:alice@acme | payment.capture | ok | payment-card-number",
                "token:alice@acme | payment.capture | repeated | payment-card-number",
                "twilio | callback.accepted | ok | capture payment-card-number",
                "token:bob | payment.cancel | refused: unknown session | -",
                "token:alice@acme | payment.cancel | ok | -",
            ], "\(lines.joined(separator: "\n"))")
        #expect(records.allSatisfy { $0.entry.replica == "replica-1" && $0.entry.paymentSID == sid.rawValue })
        #expect(
            records.filter { $0.entry.actor.hasPrefix("token:alice") }.allSatisfy { $0.entry.origin == "192.0.2.7" })
        // Without the random ids and the hashes chained from them: hex that holds "4242" by chance
        // about one run in seventy.
        let everything = records.map { record in
            [record.entry.id, record.hash, record.previousHash].reduce(AuditLine.encode(record)) {
                $0.replacingOccurrences(of: $1, with: "")
            }
        }.joined()
        #expect(!everything.contains("4242") && !everything.contains("4xxx"), "no masked value, no card data")
        #expect(everything.contains("payment-card-number"), "the fields that remain are searched")
    }
}
