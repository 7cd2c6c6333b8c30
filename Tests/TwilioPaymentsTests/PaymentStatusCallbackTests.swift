import Foundation
import Testing
@testable import TwilioPayments

@Suite struct PaymentStatusCallbackTests {
    @Test func parsesEveryDocumentedField() {
        let body =
            "AccountSid=\(Fixture.account)&CallSid=\(Fixture.call)&Sid=\(Fixture.payment)&DateCreated=2021-08-10T03%3A55%3A53.408Z"
            + "&DateUpdated=Wed%2C+18+Dec+2019+20%3A02%3A01+%2B0000&PaymentConnector=PGP_MOCK&PaymentMethod=credit-card&TokenType=reusable"
            + "&ChargeAmount=9.99&Currency=USD&Capture=payment-card-number&PartialResult=false&Required=security-code%2Cexpiration-date"
            + "&ErrorType=invalid-card-number&PaymentCardNumber=xxxxxxxxxxxx1111&PaymentCardType=visa&ExpirationDate=1225"
            + "&SecurityCode=xxx&PaymentCardPostalCode=94105&Result=success&PaymentConfirmationCode=ch_a9dc&PaymentToken=tok_1"
            + "&ProfileId=prof_1&PaymentError=&PayErrorCode=64012&ConnectorError=declined&FutureField=kept"
        let callback = PaymentStatusCallback(body: body)!
        #expect(
            callback.accountSID == Fixture.account && callback.callSID == Fixture.call
                && callback.paymentSID == Fixture.payment)
        #expect(callback.dateCreated == Date(timeIntervalSince1970: 1_628_567_753.408))
        #expect(callback.dateUpdated == Date(timeIntervalSince1970: 1_576_699_321))
        #expect(
            callback.paymentMethod == .creditCard && callback.tokenType == .reusable && callback.chargeAmount == "9.99")
        #expect(callback.capture == .cardNumber && callback.partialResult == false)
        #expect(callback.required == [.securityCode, .expirationDate] && callback.hasRequired)
        #expect(callback.errorType == .invalidCardNumber)
        #expect(callback.paymentCardNumber == "xxxxxxxxxxxx1111" && callback.paymentCardType == "visa")
        #expect(
            callback.expirationDate == "1225" && callback.securityCode == "xxx"
                && callback.paymentCardPostalCode == "94105")
        #expect(
            callback.result == .success && callback.paymentConfirmationCode == "ch_a9dc"
                && callback.paymentToken == "tok_1")
        #expect(callback.profileID == "prof_1" && callback.paymentError == nil && callback.payErrorCode == 64012)
        #expect(callback.connectorError == "declined" && callback.unknownFields == ["FutureField": "kept"])
    }

    @Test(arguments: [
        ("payment-card-number,security-code", [PaymentItem.cardNumber, .securityCode]),
        ("payment-card-number security-code", [.cardNumber, .securityCode]),
        ("payment-card-number, security-code", [.cardNumber, .securityCode]),
        ("", []),
    ])
    func readsRequiredInEveryForm(raw: String, items: [PaymentItem]) {
        let callback = PaymentStatusCallback(fields: [("Required", raw)])
        #expect(callback.required == items && callback.hasRequired)
    }

    @Test func keepsUnknownRequiredAndEnumValuesVerbatim() {
        let callback = PaymentStatusCallback(fields: [
            ("Required", "payment-card-number,retina-scan"), ("ErrorType", "new-kind"),
            ("Result", "mystery"),
        ])
        #expect(callback.required == [.cardNumber] && callback.requiredRaw == ["payment-card-number", "retina-scan"])
        #expect(callback.errorType == .other("new-kind") && callback.result == .other("mystery"))
        #expect(!PaymentStatusCallback(fields: []).hasRequired)
    }

    @Test func readsBooleansAsTwilioSendsThem() {
        #expect(PaymentStatusCallback(fields: [("PartialResult", "true")]).partialResult == true)
        #expect(PaymentStatusCallback(fields: [("PartialResult", "False")]).partialResult == false)
        #expect(PaymentStatusCallback(fields: [("PartialResult", "maybe")]).partialResult == nil)
    }

    @Test func documentedEnumsRoundTrip() {
        #expect(PaymentErrorType.documented.count == 13 && PaymentResult.documented.count == 7)
        for value in PaymentErrorType.documented { #expect(PaymentErrorType(rawValue: value.rawValue) == value) }
        for value in PaymentResult.documented { #expect(PaymentResult(rawValue: value.rawValue) == value) }
    }

    @Test func aCallbackThatFinishesTheSessionMustNameItAsTwilioDoes() {
        let identity = [
            ("AccountSid", Fixture.account.rawValue), ("CallSid", Fixture.call.rawValue),
            ("Sid", Fixture.payment.rawValue),
        ]
        let whole = PaymentStatusCallback(fields: identity + [("Result", "success")])
        #expect(whole.finishesSession && whole.refusal == nil)
        let bare = PaymentStatusCallback(fields: [("Result", "success"), ("PaymentConfirmationCode", "ch_forged")])
        #expect(bare.refusal == .finishingWithoutIdentity(missing: ["AccountSid", "CallSid", "Sid"]))
        #expect(
            bare.refusal?.description
                == "a callback with a Result finishes the payment session, so it must carry AccountSid, CallSid "
                + "and Sid as Twilio sends them; AccountSid, CallSid and Sid are missing or malformed")
        let noSid = PaymentStatusCallback(fields: identity.filter { $0.0 != "Sid" } + [("Result", "caller-hung-up")])
        #expect(noSid.refusal == .finishingWithoutIdentity(missing: ["Sid"]))
        let malformed = PaymentStatusCallback(fields: identity.dropLast() + [("Sid", "PK123"), ("Result", "mystery")])
        #expect(
            malformed.refusal == .finishingWithoutIdentity(missing: ["Sid"]),
            "a value that is no payment SID counts as none")
        // Progress reports are not refused for missing SIDs: they cannot end anything.
        #expect(PaymentStatusCallback(fields: [("Capture", "payment-card-number"), ("Result", "")]).refusal == nil)
    }

    @Test func refusesMalformedBodies() {
        #expect(PaymentStatusCallback(body: "Sid=%ZZ") == nil)
        #expect(PaymentStatusCallback(body: "Sid=%E2%82") == nil)
    }
}

@Suite struct TwilioDateTests {
    @Test(arguments: [
        ("Wed, 18 Dec 2019 20:02:01 +0000", 1_576_699_321.0),
        ("18 Dec 2019 20:02:01 GMT", 1_576_699_321.0),
        ("Wed, 18 Dec 2019 15:02:01 -0500", 1_576_699_321.0),
        ("2021-08-10T03:55:53.408Z", 1_628_567_753.408),
        ("2021-08-10T05:55:53+02:00", 1_628_567_753.0),
        ("2000-02-29T00:00:00Z", 951_782_400.0),
    ])
    func parsesBothFormats(text: String, seconds: Double) throws {
        let date = try #require(TwilioDate.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.0005)
    }

    @Test(arguments: [
        "", "yesterday", "2021-13-01T00:00:00Z", "Wed, 18 Foo 2019 20:02:01 +0000", "2021-08-10T03:55:53",
        "2021-08-10T03:55:53.Z",
    ])
    func refusesOtherText(text: String) {
        #expect(TwilioDate.parse(text) == nil)
    }
}

@Suite struct TwilioErrorCatalogTests {
    @Test func explainsEveryDocumentedCode() {
        let codes = Array(64001...64024) + [20003, 20404, 20429]
        for code in codes {
            let entry = TwilioErrorCatalog.entries[code]
            #expect(entry != nil && !entry!.meaning.isEmpty && !entry!.remedy.isEmpty, "code \(code)")
        }
        let error = TwilioAPIError(httpStatus: 400, code: 64021, message: "Invalid operation")
        #expect(error.description.contains("already running") && error.description.contains("complete or cancel"))
    }
}

@Suite struct FormEncodingTests {
    @Test func roundTripsAnyText() {
        let pairs = [("a b", "c+d&e=f"), ("ü", "€😀"), ("empty", ""), ("x", "%25")]
        #expect(FormEncoding.decode(FormEncoding.encode(pairs))!.elementsEqual(pairs, by: { $0 == $1 }))
        #expect(FormEncoding.encode([("k", "a b")]) == "k=a+b")
    }

    /// Escapes that decode to bytes which are not UTF-8 are refused, whatever the rest holds; the
    /// checks of the other modules' parsers are the same few lines (MCPCore's `JSONValueTests`,
    /// PaymentFlow's `StorageCodecTests`).
    @Test(arguments: ["a=%FF", "a=%C3", "a=%C3%28", "%ED%A0%80=x", "a=%F4%90%80%80", "a=ok&b=%E2%82"])
    func refusesEscapesThatAreNotUTF8(body: String) {
        #expect(FormEncoding.decode(body) == nil)
    }

    /// ASCII bodies are split by their bytes; every other body by characters, as all were before.
    /// Both ways give the same pairs, for random ASCII (every byte, `%` escapes among them) and
    /// for text that is not ASCII; the same for names and `Required` tokens.
    @Test func theByteWaysReadAsTheCharacterWays() {
        var generator = SystemRandomNumberGenerator()
        let ascii = (0..<128).map { Character(Unicode.Scalar(UInt8($0))) }
        let likely = Array("&&==%%%2C41ACa-_ +,;\r\n\t")
        func random(_ length: ClosedRange<Int>) -> String {
            String(
                (0..<Int.random(in: length, using: &generator)).map { _ in
                    Bool.random(using: &generator)
                        ? ascii.randomElement(using: &generator)! : likely.randomElement(using: &generator)!
                })
        }
        var texts = (0..<3_000).map { _ in random(0...40) }
        texts += [
            "a=é&b=1", "&\u{301}=x&y=z", "Required=payment-card-number\u{2028}security-code", "e\u{301}=1", "\u{85}",
        ]
        for text in texts {
            let bytes = FormEncoding.decode(text).map { $0.map { [$0.0, $0.1] } }
            let characters = FormEncoding.decodeByCharacter(text).map { $0.map { [$0.0, $0.1] } }
            #expect(bytes == characters, "\(text.debugDescription)")
            #expect(TwilioName.normalized(text) == TwilioName.normalizedByScalar(text), "\(text.debugDescription)")
            #expect(
                PaymentStatusCallback.requiredTokens(text) == PaymentStatusCallback.requiredTokensByCharacter(text),
                "\(text.debugDescription)")
        }
    }

    @Test func decodesUTF8Escapes() throws {
        let pairs = try #require(FormEncoding.decode("a=%C3%A9t%C3%A9&b=%F0%9F%98%80&c=plain"))
        #expect(pairs.map(\.1) == ["été", "😀", "plain"])
    }
}
