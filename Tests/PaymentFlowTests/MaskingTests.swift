import Testing
@testable import PaymentFlow
import TwilioPayments

@Suite struct MaskingTests {
    @Test(arguments: [
        ("4111111111111111", "xxxxxxxxxxxx1111"), ("xxxxxxxxxxxx1111", "xxxxxxxxxxxx1111"),
        ("4111 1111 1111 1111", "xxxx xxxx xxxx 1111"),
        ("1234", "1234"), ("", ""), ("xxxxxxxx11111111", "xxxxxxxxxxxx1111"),
    ])
    func cardNumbersShowAtMostFourDigits(input: String, expected: String) {
        #expect(Masking.cardNumber(input) == expected)
        #expect(Masking.value(input, for: .cardNumber) == expected)
    }

    /// ASCII values are masked byte by byte; every other value character by character, as all
    /// were before. Both ways give the same text (random ASCII, and text that is not).
    @Test func theByteWayMasksAsTheCharacterWay() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789x* -\r\n\t/a")
        var inputs = (0..<2_000).map { _ in
            String(
                (0..<Int.random(in: 0...24, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
        }
        inputs += ["４１１１１１１１１１１１１１１１", "1\u{20E3}2345678", "\r\n41111111", "é4111111111111111", "٤١١١١١"]
        for input in inputs {
            for (visible, mask) in [(4, Character("x")), (0, "x"), (4, "*"), (2, "•")] {
                #expect(
                    Masking.keepLastDigits(input, visible: visible, mask: mask)
                        == Masking.keepLastDigitsByCharacter(input, visible: visible, mask: mask),
                    "\(input.debugDescription), \(visible), \(mask)")
            }
        }
    }

    @Test func securityCodesShowNoDigit() {
        #expect(Masking.securityCode("123") == "xxx")
        #expect(Masking.securityCode("1x3") == "xxx")
        #expect(Masking.securityCode("xxx") == "xxx")
        #expect(Masking.exposes("12x", for: .securityCode) && !Masking.exposes("xxx", for: .securityCode))
    }

    @Test func clearItemsStayClear() {
        #expect(Masking.value("1230", for: .expirationDate) == "1230")
        #expect(Masking.value("94105", for: .postalCode) == "94105")
        #expect(Masking.value("121000358", for: .bankRoutingNumber) == "121000358")
        #expect(Masking.value("*******92", for: .bankAccountNumber) == "*******92")
    }

    @Test func sanitizedSessionsAreMasked() {
        var session = Sample.cardSession()
        session.items[.cardNumber] = ItemProgress()
        session.items[.cardNumber]?.state = .captured(masked: "4111111111111111")
        session.items[.securityCode] = ItemProgress()
        session.items[.securityCode]?.state = .capturing(masked: "12")
        let clean = session.sanitized()
        #expect(clean.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111" && clean.maskedValue(.securityCode) == "xx")
    }
}

/// Card numbers in free text (what a tool's arguments must never carry).
@Suite struct CardNumberTextTests {
    @Test(arguments: [
        "4111111111111111", "card 4111 1111 1111 1111 thanks", "4111-1111-1111-1111.", "amex 3782 822463 10005",
        "4111-1111-1111-1111-1225", // a card number and its expiry, written on: 20 digits
        "99" + "4111111111111111" + "122599", // 24 digits with a Luhn-valid 16-digit window
        "number:5555555555554444;", "word4111111111111111word", "４１１１１１１１１１１１１１１１", "٤١١١١١١١١١١١١١١١",
        "00000000000000000000000000000001", // 32 digits, no SID: zeros pass the Luhn check
    ])
    func cardNumbersAreFound(text: String) {
        #expect(Masking.containsCardNumber(text))
    }

    @Test(arguments: [
        "", "xxxxxxxxxxxx1111", "4111 1111", "123456789012", "card ending 1111, exp 12/25, cvv xxx",
        "amount 1234567.89 USD",
        String(repeating: "1", count: 24), // a long run with no Luhn-valid window
        "4111  1111  1111  1111", // double spaces part the groups: none is long enough
        "4111 - 1111 - 1111 - 1111",
        "PK00000000000000000000000000000001",
        "paymentSid=PK0000000000000000000000000000000a, callSid=CA00000000000000000000000000000001",
        "2026-12-01T08:15:44.123Z", "+1 415 555 0100",
    ])
    func otherTextIsNot(text: String) {
        #expect(!Masking.containsCardNumber(text))
    }

    @Test func rangesCoverTheDigitsOfEachCardNumberWithTheirSeparators() {
        let text = "card 4111 1111 1111 1111, then 4111-1111-1111-1111-1225 and 12345"
        let found = Masking.cardNumberRanges(in: text).map { String(text[$0]) }
        #expect(found == ["4111 1111 1111 1111", "4111-1111-1111-1111-122"], "overlapping windows merged: \(found)")
    }

    @Test func windowsAreFoundInsideLongerRuns() {
        let digits = "41111111111111111225".map { $0.wholeNumberValue! }
        #expect(Masking.cardNumberWindows(in: digits) == [5..<18, 0..<16, 1..<19])
        #expect(Masking.cardNumberWindows(in: Array(repeating: 1, count: 24)).isEmpty)
        #expect(Masking.cardNumberWindows(in: [4, 1, 1, 1]).isEmpty)
    }
}

@Suite struct ErrorGuidanceTests {
    @Test func everyErrorTypeHasGuidance() {
        for error in PaymentErrorType.documented {
            #expect(
                !ErrorGuidance.explanation(error).isEmpty && !ErrorGuidance.remedy(error, item: .cardNumber).isEmpty)
        }
    }
}
