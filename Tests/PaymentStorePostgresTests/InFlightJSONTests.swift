import Foundation
@testable import PaymentFlow
import Testing

@testable import PaymentStorePostgres

/// The in-flight column's JSON, written by hand, read back by Foundation's parser (another
/// implementation): idempotency keys come from agents, so any text must survive.
@Suite struct InFlightJSONTests {
    static func parsed(_ json: String) throws -> [String: String] {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return try #require(object as? [String: String], "not an object of strings: \(json)")
    }

    @Test func noneInFlightIsAnEmptyObject() throws {
        #expect(PostgresPaymentStore.inFlightJSON(Sample.session(1)) == "{}")
    }

    @Test func anyKeyTextIsWrittenAsJSONThatReadsBackTheSame() throws {
        var session = Sample.session(2)
        let keys = [
            "plain-0123", "quote \" and backslash \\ and slash /", "lines\nand\r\ttabs",
            "controls \u{0} \u{1} \u{1F} \u{7F}", "ünïcödé, 日本語, 🎉", "",
        ]
        for (index, key) in keys.enumerated() {
            let operations: [PaymentOperation] = [
                .create, .capture(.cardNumber), .capture(.expirationDate), .capture(.securityCode), .complete,
                .cancel,
            ]
            session.inFlight[operations[index]] = key
        }
        let json = PostgresPaymentStore.inFlightJSON(session)
        let expected = Dictionary(uniqueKeysWithValues: session.inFlight.map { ($0.key.storageName, $0.value) })
        #expect(try Self.parsed(json) == expected)
        // Keys sorted, as before (operators diff the column).
        let names = expected.keys.sorted()
        let positions = names.map { json.range(of: "\"\($0)\":")!.lowerBound }
        #expect(positions == positions.sorted())
    }
}
