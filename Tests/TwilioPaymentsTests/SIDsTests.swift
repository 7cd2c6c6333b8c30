import Testing
@testable import TwilioPayments

@Suite struct SIDsTests {
    @Test func acceptsValidSIDsOfEachKind() throws {
        let hex = "0123456789abcdefABCDEF0123456789"
        #expect(try AccountSID(validating: "AC" + hex).rawValue == "AC" + hex)
        #expect(try APIKeySID(validating: "SK" + hex).description == "SK" + hex)
        #expect(CallSID("CA" + hex) != nil)
        #expect(PaymentSID("PK" + hex) != nil)
    }

    @Test(arguments: [
        (
            "AC" + String(repeating: "a", count: 31),
            "invalid Account SID: expected AC followed by 32 hex digits, got 33 characters"
        ),
        (
            "AC" + String(repeating: "a", count: 29),
            "invalid Account SID: expected AC followed by 32 hex digits, got 31 characters"
        ),
        ("", "invalid Account SID: expected AC followed by 32 hex digits, got 0 characters"),
        (
            "SK" + String(repeating: "a", count: 32),
            "invalid Account SID: expected AC followed by 32 hex digits, got one starting with \"SK\""
        ),
        (
            "AC" + String(repeating: "a", count: 31) + "g",
            "invalid Account SID: expected AC followed by 32 hex digits, got a non-hex character at position 34"
        ),
    ])
    func explainsABadValue(text: String, message: String) {
        #expect(throws: SIDError(kind: "Account SID", description: message)) { try AccountSID(validating: text) }
    }

    @Test func kindsAreDistinctTypes() {
        let text = "CA" + String(repeating: "0", count: 32)
        #expect(CallSID(text) != nil)
        #expect(PaymentSID(text) == nil)
    }
}

@Suite struct CredentialsTests {
    @Test func neverRevealSecretsInText() {
        let credentials = Fixture.credentials
        for text in [
            String(describing: credentials), String(reflecting: credentials), "\(credentials.apiSecret)",
            String(reflecting: credentials.authToken!),
            "\(Mirror(reflecting: credentials).children.map { "\($0.value)" })",
        ] {
            #expect(!text.contains(Fixture.secret))
            #expect(!text.contains("the-auth-token"))
        }
        #expect(String(describing: credentials).contains(Fixture.account.rawValue))
    }

    @Test func validateEveryPart() {
        #expect(throws: CredentialsError.self) {
            try TwilioCredentials(accountSID: "ACnope", apiKeySID: Fixture.apiKey.rawValue, apiSecret: "s")
        }
        #expect(throws: CredentialsError.emptyAPISecret) {
            try TwilioCredentials(
                accountSID: Fixture.account.rawValue, apiKeySID: Fixture.apiKey.rawValue, apiSecret: "")
        }
        #expect(
            (try? TwilioCredentials(
                accountSID: Fixture.account.rawValue, apiKeySID: Fixture.apiKey.rawValue, apiSecret: "s")) != nil)
    }
}
