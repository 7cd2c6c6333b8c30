import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

/// The storage format's own writer and reader (`PaymentSessionStorage+Codec.swift`) against
/// Foundation's `JSONEncoder` and `JSONDecoder`, which wrote and read every stored session before
/// them and stay the reference: the same bytes out, the same session in, and where the plain
/// reader steps aside, Foundation reads or refuses as it did.
@Suite struct StorageCodecTests {
    /// The storage samples, and more: recordings, an owner, escapes-free non-ASCII text, dates
    /// of every magnitude, connector parameters.
    static func samples() -> [PaymentSession] {
        var sessions = PaymentSessionStorageTests.samples()
        var paused = sessions[2]
        paused.recordings = RecordingsPause(
            state: .paused, recordings: [RecordingSID(validated: "RE" + String(repeating: "2", count: 32))],
            reason: nil)
        paused.owner = PaymentOwner(principal: "token:zoë", tenant: nil)
        paused.reference = "réf – 支払い 7"
        sessions.append(paused)
        // Keys a numeric or case-insensitive comparison would order otherwise than the bytes do.
        var keyed = sessions[0]
        var options = keyed.configuration.options
        options.parameters = Dictionary(
            uniqueKeysWithValues: ["a10", "a9", "B", "b", "_x", "Z", "é", "e", "a-1", "a.1"].map { ($0, .string($0)) })
        keyed.configuration = PaymentConfiguration(options: options)
        sessions.append(keyed)
        for seconds in [0, 1, -1.5, 0.1, 1e-7, 123_456_789.123_456_7, 9e15, 1.5e300, -2.5e-300, 86_400 * 365.25 * 30] {
            var dated = sessions[2]
            dated.updatedAt = Date(timeIntervalSinceReferenceDate: seconds)
            dated.requiredReportedAt = Date(timeIntervalSinceReferenceDate: -seconds)
            dated.items[.cardNumber]?.attemptStart = Date(timeIntervalSinceReferenceDate: seconds / 3)
            sessions.append(dated)
        }
        return sessions
    }

    func plainRead(_ data: Data) -> StoredSession? {
        data.withUnsafeBytes { bytes in StorageJSON.parse(bytes).flatMap { try? StoredSession(reading: $0) } }
    }

    @Test func thePlainWriterWritesWhatJSONEncoderWrites() throws {
        for session in Self.samples() {
            let stored = StoredSession(session.sanitized())
            let plain = try #require(stored.plainJSON(), "no string here needs an escape")
            let reference = PaymentSession.foundationJSON(stored)
            #expect(String(decoding: plain, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
            #expect(session.storageJSON() == reference)
        }
    }

    @Test func aStringThatNeedsAnEscapeIsWrittenByJSONEncoder() throws {
        for text in ["a \"quoted\" reason", "back\\slash", "line\nbreak", "tab\there", "bell\u{07}"] {
            var session = Self.samples()[7]
            session.reference = text
            let stored = StoredSession(session.sanitized())
            #expect(stored.plainJSON() == nil, "the plain writer steps aside for \(text.debugDescription)")
            #expect(session.storageJSON() == PaymentSession.foundationJSON(stored))
            #expect(try PaymentSession(storageJSON: session.storageJSON()) == session)
        }
    }

    @Test func thePlainReaderReadsWhatJSONDecoderReads() throws {
        for session in Self.samples() {
            let data = session.storageJSON()
            let plain = try #require(plainRead(data), "the plain reader reads what the writer wrote")
            let reference = try PaymentSession.foundationStored(data)
            #expect(try plain.session() == reference.session())
            #expect(try PaymentSession(storageJSON: String(decoding: data, as: UTF8.self)) == session)
            // As PostgreSQL's jsonb gives it back: keys in its own order, a space after ':' and ','.
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let reordered = try #require(
                String(
                    data: try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes]),
                    encoding: .utf8)
            ).replacingOccurrences(of: "\":", with: "\": ").replacingOccurrences(of: ",\"", with: ", \"")
            let spaced = try #require(plainRead(Data(reordered.utf8)), "the plain reader reads jsonb's spelling")
            #expect(try spaced.session() == reference.session())
        }
    }

    @Test func theReaderStepsAsideForWhatIsNotPlainAndFoundationDecides() throws {
        let text = String(decoding: Self.samples()[2].storageJSON(), as: UTF8.self)
        let session = try PaymentSession(storageJSON: Data(text.utf8))
        let variants: [(String, String)] = [
            ("\"id\":\"", "\"id\":\"\\u0041"), // an escape
            ("\"failedAttempts\":0", "\"failedAttempts\":0.0"), // an integer spelled as a fraction
            ("\"format\":2", "\"format\":2,\"format\":2"), // a duplicate key
            ("\"requiredFromTwilio\":true", "\"requiredFromTwilio\":\"true\""), // a string for a boolean
            ("\"createdAt\":", "\"createdAt\":2.5e-900,\"x\":"), // underflows to 0 in Double(_:); Foundation refuses it
            ("\"createdAt\":", "\"createdAt\":1e-310,\"x\":"), // a subnormal
            // Members the session does not have, more than the reader scans: Foundation ignores them.
            ("\"format\":2", "\"format\":2," + (0..<64).map { "\"unknown\($0)\":\($0)" }.joined(separator: ",")),
        ]
        for (from, to) in variants {
            let changed = text.replacingOccurrences(of: from, with: to)
            #expect(changed != text, "\(from) is in the sample")
            #expect(plainRead(Data(changed.utf8)) == nil, "the plain reader steps aside for \(to)")
            let foundation = Result { () throws(PaymentSessionStorageError) in
                try PaymentSession.foundationStored(Data(changed.utf8)).session().sanitized()
            }
            let ours = Result { () throws(PaymentSessionStorageError) in
                try PaymentSession(storageJSON: Data(changed.utf8))
            }
            #expect(ours == foundation, "read as Foundation reads \(to)")
        }
        #expect(text.contains("\"id\":\""))
        // Bytes that are not UTF-8 in a string: neither reader takes them.
        let id = Array(session.id.utf8)
        for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80]] {
            var bytes = Array(text.utf8)
            let at = try #require(bytes.indices.first { bytes[$0...].starts(with: id) })
            bytes.insert(contentsOf: bad, at: at)
            #expect(plainRead(Data(bytes)) == nil)
            #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data(bytes)) }
        }
    }

    /// Ten thousand damaged copies of the samples: whatever the plain reader accepts, Foundation
    /// accepts too and reads as the same session; a copy it refuses is Foundation's to judge.
    @Test func aDamagedSessionIsNeverReadOtherwiseThanFoundationReadsIt() throws {
        var generator = SystemRandomNumberGenerator()
        let texts = Self.samples().map { Array($0.storageJSON()) }
        let alphabet = Array("{}[]\":,.-+eE0123456789 tfnul\\ax".utf8)
        var acceptedByBoth = 0
        for round in 0..<10_000 {
            var bytes = texts[round % texts.count]
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(alphabet.randomElement(using: &generator)!, at: at)
                default: bytes[at] = alphabet.randomElement(using: &generator)!
                }
            }
            let data = Data(bytes)
            guard let plain = plainRead(data) else { continue }
            let reference = try #require(
                try? PaymentSession.foundationStored(data),
                "Foundation refuses what the plain reader took: \(String(decoding: bytes, as: UTF8.self))")
            let ours = Result { () throws(PaymentSessionStorageError) in try plain.session() }
            let theirs = Result { () throws(PaymentSessionStorageError) in try reference.session() }
            #expect(ours == theirs, "\(String(decoding: bytes, as: UTF8.self))")
            acceptedByBoth += 1
        }
        #expect(
            acceptedByBoth > 100, "damage the plain reader still reads (a changed digit, a space): \(acceptedByBoth)")
    }
}
