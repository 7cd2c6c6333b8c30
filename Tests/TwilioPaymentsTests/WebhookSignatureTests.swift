import Foundation
import Testing
@testable import TwilioPayments

@Suite struct WebhookSignatureTests {
    static let signer = WebhookSignature(authToken: Secret("12345"))
    static let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    static let params = [
        ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
        ("From", "+14158675309"), ("To", "+18005551212"),
    ]

    /// Every vector of reference §6.
    @Test(arguments: [
        (url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", params, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", params, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", params, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        (
            url,
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")],
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        ),
        (
            "https://example.com/myapp.php?foo=1&bar=2",
            [
                ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675310"), ("Digits", "1234"),
                ("From", "+14158675310"), ("To", "+18005551212"),
            ],
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ),
    ])
    func signsAndValidatesTheReferenceVectors(url: String, params: [(String, String)], signature: String) {
        #expect(Self.signer.sign(url: url, parameters: params) == signature)
        #expect(Self.signer.isValid(signature: signature, url: url, parameters: params))
    }

    @Test func acceptsPortVariantsOfTheURL() {
        // Twilio signed the URL with :443; we received it without the port, and vice versa.
        #expect(Self.signer.isValid(signature: "kvajT1Ptam85bY51eRf/AJRuM3w=", url: Self.url, parameters: Self.params))
        #expect(
            Self.signer.isValid(
                signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                parameters: Self.params))
    }

    @Test func validatesTheJSONBodyVariant() {
        let url = Self.url + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        let body = Data(#"{"property": "value", "boolean": true}"#.utf8)
        #expect(Self.signer.isValid(signature: "a9nBmqA0ju/hNViExpshrM61xv4=", url: url, body: body))
        #expect(
            !Self.signer.isValid(
                signature: "a9nBmqA0ju/hNViExpshrM61xv4=", url: url, body: Data(#"{"property": "evil"}"#.utf8)))
        #expect(!Self.signer.isValid(signature: "a9nBmqA0ju/hNViExpshrM61xv4=", url: Self.url, body: body))
    }

    @Test func refusesForgeries() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        var tampered = Self.params
        tampered[2] = ("Digits", "9999")
        #expect(!Self.signer.isValid(signature: good, url: Self.url, parameters: tampered))
        #expect(!Self.signer.isValid(signature: good, url: Self.url + "&x=1", parameters: Self.params))
        #expect(
            !WebhookSignature(authToken: Secret("54321")).isValid(
                signature: good, url: Self.url, parameters: Self.params))
        #expect(!Self.signer.isValid(signature: "", url: Self.url, parameters: Self.params))
        #expect(!Self.signer.isValid(signature: "not base64!", url: Self.url, parameters: Self.params))
        #expect(!Self.signer.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8", url: Self.url, parameters: Self.params))
        #expect(
            !Self.signer.isValid(
                signature: "http://mycompany.com:1234", url: "http://mycompany.com/myapp.php?foo=1&bar=2",
                parameters: Self.params))
    }

    @Test func sortsByCodePointNotByLocale() {
        let bytes = WebhookSignature.signedBytes(
            url: "u", parameters: [("b", "1"), ("B", "2"), ("Ä", "3"), ("a", "4")])
        #expect(String(decoding: bytes, as: UTF8.self) == "uB2a4b1Ä3")
    }
}
