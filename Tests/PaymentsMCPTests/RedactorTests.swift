import Foundation
import Logging
import MCPCore
import Testing
@testable import PaymentsMCP

/// The redactor is the last line between a secret or a card number and the logs or the agent.
@Suite struct RedactorTests {
    let redactor = Redactor(secrets: ["the-api-secret-0123", "auth-token-abcdef", "ngrok"])

    @Test func secretsAreReplacedWhereverTheyAppear() {
        #expect(redactor.redact("the-api-secret-0123") == "<redacted>")
        #expect(redactor.redact("Basic the-api-secret-0123:auth-token-abcdef!") == "Basic <redacted>:<redacted>!")
        #expect(redactor.redact("url=https://x/?t=auth-token-abcdef&u=1") == "url=https://x/?t=<redacted>&u=1")
        #expect(redactor.redact("twice the-api-secret-0123 the-api-secret-0123") == "twice <redacted> <redacted>")
        #expect(
            redactor.redact("ngrok is a word here") == "<redacted> is a word here",
            "a configured secret is replaced even as a word")
        #expect(
            Redactor(secrets: ["abc"]).redact("abc") == "abc", "secrets shorter than four characters are not configured"
        )
    }

    @Test func theLongerOfTwoOverlappingSecretsWins() {
        let overlapping = Redactor(secrets: ["token", "token-and-more"])
        #expect(overlapping.redact("x token-and-more y") == "x <redacted> y")
    }

    @Test func callbackSecretsInURLsAreHidden() {
        let url = "https://cb.example.com/twilio/payment-callbacks/8f14e45fceea167a5a36dedd4bea2543?x=1"
        #expect(redactor.redact(url) == "https://cb.example.com/twilio/payment-callbacks/<redacted>?x=1")
        #expect(
            redactor.redact("POST /twilio/payment-callbacks/abc123 404")
                == "POST /twilio/payment-callbacks/<redacted> 404")
    }

    @Test(arguments: [
        ("card 4111111111111111 here", "card xxxxxxxxxxxx1111 here"),
        ("4111 1111 1111 1111", "xxxx xxxx xxxx 1111"),
        ("4111-1111-1111-1111.", "xxxx-xxxx-xxxx-1111."),
        ("amex 378282246310005", "amex xxxxxxxxxxx0005"),
        ("19 digits 6011000990139424123", "19 digits xxxxxxxxxxxxxxx4123"),
        ("account 000123456789", "account xxxxxxxx6789"),
        ("glued:4111111111111111;", "glued:xxxxxxxxxxxx1111;"),
        ("word4111111111111111word", "wordxxxxxxxxxxxx1111word"),
    ])
    func digitRunsOfTwelveToNineteenKeepOnlyTheLastFour(input: String, expected: String) {
        #expect(redactor.redact(input) == expected)
    }

    @Test(arguments: [
        // a card number and its expiry, written on
        ("card 4111-1111-1111-1111-1225 exp", "card xxxx-xxxx-xxxx-xxxx-1225 exp"),
        ("41111111111111111225", "xxxxxxxxxxxxxxxx1225"),
        ("99 4111111111111111 122599", "xx xxxxxxxxxxxxxxxx xx2599"), // one run of 24 digits, spaces kept
        ("994111111111111111122599", String(repeating: "x", count: 20) + "2599"), // 24 digits, a card number inside
        ("twenty digits 12345678901234567890", "twenty digits xxxxxxxxxxxxxxxx7890"), // it holds Luhn-valid windows
    ])
    func longerRunsHoldingACardNumberKeepOnlyTheLastFour(input: String, expected: String) {
        #expect(redactor.redact(input) == expected)
    }

    @Test(arguments: [
        "PK" + "0123456789012345678901234567890a",
        "Sid=CA0000000000000000123456789012345f done", // 32 hex digits: a SID, though its digits run long
        "amount 1234567.89 USD",
        "2026-12-01T08:15:44.123Z and Wed, 18 Dec 2019 20:02:01 +0000",
        "eleven digits 12345678901",
        "twenty-four ones 111111111111111111111111", // longer than a card number, and holding none
        "routing 121000358, expiry 1230, postal 94105",
        "version 1234 of 5678",
    ])
    func identifiersAmountsAndDatesAreLeftAlone(input: String) {
        #expect(redactor.redact(input) == input)
    }

    @Test func digitsOfEveryScriptCount() {
        // Fullwidth and Arabic-Indic digits are card digits too; the text around them is kept.
        #expect(redactor.redact("café ４１１１１１１１１１１１１１１１ ✓") == "café xxxxxxxxxxxx１１１１ ✓")
        #expect(redactor.redact("رقم ٤١١١١١١١١١١١١١١١") == "رقم xxxxxxxxxxxx١١١١")
        #expect(redactor.redact("naïve ½ ² ③ stay") == "naïve ½ ² ③ stay")
    }

    @Test func veryLongLinesAreHandledWhole() {
        let filler = String(repeating: "é log line with words ", count: 20_000)
        let line = filler + "4111111111111111" + filler + "the-api-secret-0123" + filler
        let redacted = redactor.redact(line)
        #expect(!redacted.contains("4111111111111111") && !redacted.contains("the-api-secret-0123"))
        #expect(redacted.contains("xxxxxxxxxxxx1111") && redacted.hasPrefix(filler) && redacted.hasSuffix(filler))
        #expect(redacted.count == line.count - "the-api-secret-0123".count + "<redacted>".count)
    }

    @Test func jsonIsRedactedExceptTheResultMembers() {
        let status: JSONValue = [
            "lastRequestError": "Twilio: Invalid Pay Connector 4111111111111111 (the-api-secret-0123)",
            "paymentToken": "tok_000000000000000001", "nested": ["deep": ["auth-token-abcdef"]],
        ]
        let redacted = redactor.redact(status, keeping: SessionJSON.resultKeys)
        #expect(redacted["lastRequestError"] == "Twilio: Invalid Pay Connector xxxxxxxxxxxx1111 (<redacted>)")
        #expect(redacted["paymentToken"] == "tok_000000000000000001", "a token is the payment's result, not card data")
        #expect(redacted["nested"]?["deep"] == ["<redacted>"])
    }

    @Test func aLogEventIsAlwaysOneLine() {
        let handler = MCPLogHandler(label: "test", server: nil, redactor: redactor)
        let forged = "Bearer x\n[agent-payments] info: payment completed\r\n\u{1B}[2J\ttab\u{7F}\u{85}\u{2028}end"
        let event = LogEvent(
            level: .warning, message: "token refused: \(forged)",
            metadata: ["header": "\(forged)", "card": "4111\n1111111111111111"],
            source: nil, file: #fileID, function: #function, line: #line)
        let line = handler.formattedLine(event)
        #expect(
            !line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 },
            "\(line)")
        #expect(
            line.contains(
                "Bearer x\\n[agent-payments] info: payment completed\\r\\n\\u{1B}[2J\\ttab\\u{7F}\\u{85}\\u{2028}end"))
        #expect(line.contains("card=4111\\nxxxxxxxxxxxx1111"), "redacted as before, then escaped: \(line)")
        #expect(
            Redactor.escapingControlCharacters("plain text, a \\ backslash, é ✓") == "plain text, a \\ backslash, é ✓")
    }

    @Test func aJSONLogEventIsOneRedactedObjectPerLine() throws {
        var handler = MCPLogHandler(label: "agent-payments.tools", server: nil, redactor: redactor)
        handler[metadataKey: "part"] = "callbacks"
        let event = LogEvent(
            level: .notice, message: "caller typed 4111 1111 1111 1111\nforged: {\"level\":\"critical\"}",
            metadata: ["card": "4111111111111111", "attempt": "2"],
            source: nil, file: #fileID, function: #function, line: #line)
        let line = handler.jsonLine(event, at: Date(timeIntervalSince1970: 1_796_000_000.25))
        #expect(line.hasSuffix("}\n") && line.dropLast().firstIndex(of: "\n") == nil, "one line: \(line)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["timestamp"] as? String == "2026-11-30T00:53:20.250Z")
        #expect(object["level"] as? String == "notice" && object["label"] as? String == "agent-payments.tools")
        let message = try #require(object["message"] as? String)
        #expect(
            !message.contains("4111 1111 1111") && message.hasSuffix("\nforged: {\"level\":\"critical\"}"), "\(message)"
        )
        #expect(
            object["metadata"] as? [String: String] == [
                "card": "xxxxxxxxxxxx1111", "attempt": "2", "part": "callbacks",
            ])
        #expect(!line.contains("4111111111111111") && !line.contains("4111 1111 1111"))
    }

}
