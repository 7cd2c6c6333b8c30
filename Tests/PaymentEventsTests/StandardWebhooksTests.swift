import Foundation
import Testing
@testable import PaymentEvents

@Suite struct StandardWebhooksTests {
    // The vector of the specification's own libraries: standard-webhooks/standard-webhooks,
    // libraries/javascript/src/webhook.test.ts, test "sign function works".
    static let specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let specID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let specTimestamp = 1614265330
    static let specBody = Array(#"{"test": 2432232314}"#.utf8)
    static let specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    static let secret = try! WebhookSecret(parsing: specSecret)
    static let then = Date(timeIntervalSince1970: TimeInterval(specTimestamp))

    static func verify(
        id: String = specID, timestamp: String = String(specTimestamp), header: String = specSignature,
        body: [UInt8] = specBody, now: Date = then, tolerance: Duration = StandardWebhooks.defaultTolerance,
        secret: WebhookSecret = secret
    ) -> Bool {
        StandardWebhooks.verify(
            secret: secret, id: id, timestamp: timestamp, signatureHeader: header, body: body, now: now,
            tolerance: tolerance)
    }

    @Test func signsTheSpecificationsVector() throws {
        #expect(
            StandardWebhooks.signature(
                secret: Self.secret, id: Self.specID, timestamp: Self.specTimestamp, body: Self.specBody)
                == Self.specSignature)
        #expect(Self.verify())
    }

    @Test func acceptsTheSecretWithAndWithoutItsPrefix() throws {
        let bare = try WebhookSecret(parsing: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(bare == Self.secret)
        #expect(try WebhookSecret(parsing: " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n") == Self.secret)
        #expect(
            StandardWebhooks.signature(
                secret: bare, id: Self.specID, timestamp: Self.specTimestamp, body: Self.specBody) == Self.specSignature
        )
    }

    /// Vectors computed apart from this code, with Python's `hmac` and `base64` modules: a key of
    /// bytes 0…31 over a body that is not UTF-8 (and holds a `.` and a newline), and a 64-byte key
    /// over an empty body at timestamp 0.
    @Test(arguments: [
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "evt_01J", 1700000000,
            [0, 255, 128, 46, 10, 195, 169, 226, 130, 172] as [UInt8], "v1,+Ig85cehBI/5tdH5uiLP6W/qOUhaI8yXTT0keA2+Thw="
        ),
        (
            "whsec_" + String(repeating: "paWl", count: 21) + "pQ==", "x", 0, [] as [UInt8],
            "v1,uqmqs3yeDAUzQL0FdrEXxdesmmJl1nscc80wiMqeDGQ="
        ),
    ])
    func signsIndependentlyComputedVectors(
        secret: String, id: String, timestamp: Int, body: [UInt8], expected: String
    ) throws {
        let key = try WebhookSecret(parsing: secret)
        #expect(StandardWebhooks.signature(secret: key, id: id, timestamp: timestamp, body: body) == expected)
        #expect(
            StandardWebhooks.verify(
                secret: key, id: id, timestamp: String(timestamp), signatureHeader: expected, body: body,
                now: Date(timeIntervalSince1970: TimeInterval(timestamp))))
    }

    @Test func headersAreIDTimestampAndSignatureInOrder() {
        let headers = StandardWebhooks.headers(
            secret: Self.secret, id: Self.specID, timestamp: Self.specTimestamp, body: Self.specBody)
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(headers.map(\.value) == [Self.specID, "1614265330", Self.specSignature])
    }

    @Test func refusesATamperedBodyIDTimestampOrKey() throws {
        var body = Self.specBody
        body[body.count - 2] ^= 1
        #expect(!Self.verify(body: body))
        #expect(!Self.verify(body: Self.specBody + [0x20]))
        #expect(!Self.verify(body: []))
        #expect(!Self.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJeK"))
        // Still within tolerance, so only the signature can refuse it.
        #expect(!Self.verify(timestamp: String(Self.specTimestamp + 1)))
        #expect(!Self.verify(secret: WebhookSecret.generate()))
    }

    @Test func refusesAnIDThatMakesTheSignedContentAmbiguous() {
        // "a.1614265330" + "." + timestamp … could be read as another id and timestamp.
        let id = "a.b"
        let header = StandardWebhooks.signature(
            secret: Self.secret, id: id, timestamp: Self.specTimestamp, body: Self.specBody)
        #expect(!Self.verify(id: id, header: header))
        #expect(
            !Self.verify(
                id: "",
                header: StandardWebhooks.signature(
                    secret: Self.secret, id: "", timestamp: Self.specTimestamp, body: Self.specBody)))
    }

    @Test(arguments: [
        // Space-separated, in any position, among other versions, stale keys and junk.
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= \(StandardWebhooksTests.specSignature)",
        "\(StandardWebhooksTests.specSignature) v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== \(StandardWebhooksTests.specSignature)",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= garbage  \(StandardWebhooksTests.specSignature) ",
    ])
    func acceptsOneValidSignatureAmongSeveral(header: String) {
        #expect(Self.verify(header: header))
    }

    @Test(arguments: [
        "",
        " ",
        "v1,",
        "v1",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // no version
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // the right signature under another version
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", // cut short
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE==",
        "v1,g0hM9SsE",
        "v1, g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=,extra",
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    ])
    func refusesMalformedOrWrongSignatureHeaders(header: String) {
        #expect(!Self.verify(header: header))
    }

    @Test(arguments: [
        "", "hello", "1614265330.0", "+1614265330", "-1614265330", " 1614265330", "1614265330 ", "0x60380A72",
        "１６１４２６５３３０", "99999999999999999999",
    ])
    func refusesMalformedTimestamps(timestamp: String) {
        #expect(!Self.verify(timestamp: timestamp, now: Date(timeIntervalSince1970: 1614265330)))
    }

    @Test func acceptsTimestampsWithinTheToleranceEitherWay() {
        let at = { (seconds: Int) in Date(timeIntervalSince1970: TimeInterval(seconds)) }
        let t = Self.specTimestamp
        #expect(Self.verify(now: at(t + 300)))
        #expect(Self.verify(now: at(t - 300)))
        #expect(Self.verify(now: at(t + 300).addingTimeInterval(0.9))) // still second t + 300
        #expect(!Self.verify(now: at(t + 301)))
        #expect(!Self.verify(now: at(t - 301)))
        #expect(Self.verify(now: at(t + 60), tolerance: .seconds(60)))
        #expect(!Self.verify(now: at(t + 61), tolerance: .seconds(60)))
        #expect(Self.verify(now: at(t), tolerance: .zero))
        #expect(!Self.verify(now: at(t + 1), tolerance: .zero))
        #expect(Self.verify(now: at(t), tolerance: .seconds(Int64.max)))
        #expect(!Self.verify(now: Date(timeIntervalSince1970: .infinity)))
    }

    @Test func aGeneratedSecretRoundTripsThroughItsEncoding() throws {
        let secret = WebhookSecret.generate()
        #expect(secret.key.count == 32)
        #expect(secret.encoded.hasPrefix("whsec_"))
        #expect(try WebhookSecret(parsing: secret.encoded) == secret)
        #expect(WebhookSecret.generate() != secret)
        let signature = StandardWebhooks.signature(
            secret: secret, id: "evt_1", timestamp: 1_700_000_000, body: Array("{}".utf8))
        #expect(
            StandardWebhooks.verify(
                secret: try WebhookSecret(parsing: secret.encoded), id: "evt_1", timestamp: "1700000000",
                signatureHeader: signature, body: Array("{}".utf8), now: Date(timeIntervalSince1970: 1_700_000_000)))
    }

    @Test(arguments: [
        ("", WebhookSecretError.empty),
        ("whsec_", .empty),
        ("  \n", .empty),
        ("whsec_not base64!", .notBase64),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL", .notBase64), // 29 characters: no base64 is
        ("whsec_MfKQ9r8G-YqrTwjUPD8ILPZIo2LaLaSw", .notBase64), // the URL-safe alphabet
        ("whsec_c2hvcnQ=", .wrongKeyLength(bytes: 5)),
        ("whsec_" + Data(repeating: 7, count: 23).base64EncodedString(), .wrongKeyLength(bytes: 23)),
        ("whsec_" + Data(repeating: 7, count: 65).base64EncodedString(), .wrongKeyLength(bytes: 65)),
    ])
    func refusesUnusableSecrets(text: String, expected: WebhookSecretError) {
        #expect(throws: expected) { try WebhookSecret(parsing: text) }
    }

    @Test func acceptsKeysOfTheSpecifiedLengthsWithOrWithoutPadding() throws {
        #expect(
            try WebhookSecret(parsing: "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()).key.count == 24)
        #expect(
            try WebhookSecret(parsing: "whsec_" + Data(repeating: 7, count: 64).base64EncodedString()).key.count == 64)
        let padded = Data(repeating: 9, count: 32).base64EncodedString()
        #expect(padded.hasSuffix("="))
        #expect(
            try WebhookSecret(parsing: padded.replacingOccurrences(of: "=", with: ""))
                == WebhookSecret(key: Array(repeating: 9, count: 32)))
    }

    @Test func neverShowsTheSecret() throws {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let secret = try WebhookSecret(parsing: text)
        for shown in [
            secret.description, secret.debugDescription, String(describing: secret), String(reflecting: secret),
            "\(secret)",
            {
                var out = ""
                dump(secret, to: &out)
                return out
            }(),
        ] {
            #expect(!shown.contains("MfKQ9r8G"), "\(shown)")
        }
        #expect(secret.description == "<redacted>")
        // Errors describe a refused secret without quoting it.
        for bad in ["whsec_MfKQ9r8G!KYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqr", "MfKQ9r8GKYqrTwjU"] {
            do {
                _ = try WebhookSecret(parsing: bad)
                Issue.record("\(bad.count) characters were accepted")
            } catch {
                #expect(!error.description.contains("MfKQ9r8G"), "\(error)")
                #expect(!String(reflecting: error).contains("MfKQ9r8G"))
            }
        }
    }
}
