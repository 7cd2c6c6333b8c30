import Testing
@testable import PaymentFlow
import TwilioPayments

@Suite struct MaskingTests {
    @Test(arguments: [
        ("4111111111111111", "xxxxxxxxxxxx1111"), ("xxxxxxxxxxxx1111", "xxxxxxxxxxxx1111"), ("4111 1111 1111 1111", "xxxx xxxx xxxx 1111"),
        ("1234", "1234"), ("", ""), ("xxxxxxxx11111111", "xxxxxxxxxxxx1111"),
    ])
    func cardNumbersShowAtMostFourDigits(input: String, expected: String) {
        #expect(Masking.cardNumber(input) == expected)
        #expect(Masking.value(input, for: .cardNumber) == expected)
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

@Suite struct ErrorGuidanceTests {
    @Test func everyErrorTypeHasGuidance() {
        for error in PaymentErrorType.documented {
            #expect(!ErrorGuidance.explanation(error).isEmpty && !ErrorGuidance.remedy(error, item: .cardNumber).isEmpty)
        }
    }
}
