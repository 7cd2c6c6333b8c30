import Foundation
import Testing
@testable import TwilioPayments

/// Everything the client can send is in Twilio's own OpenAPI description.
@Suite struct OpenAPIConformanceTests {
    private func object(_ value: Any?, _ what: String) throws -> [String: Any] {
        try #require(value as? [String: Any], "the OpenAPI fixture has no object at \(what)")
    }

    private func operation(_ path: String) throws -> (properties: [String: Any], required: [String]) {
        let paths = try object(try Fixture.openAPI()["paths"], "paths")
        let post = try object(try object(paths[path], path)["post"], "\(path) post")
        let body = try object(try object(post["requestBody"], "requestBody")["content"], "content")
        let schema = try object(
            try object(body["application/x-www-form-urlencoded"], "form content")["schema"], "schema")
        let required = try #require(schema["required"] as? [String], "\(path) has no required list")
        return (try object(schema["properties"], "properties"), required)
    }

    private func schemas() throws -> [String: Any] {
        try object(try object(try Fixture.openAPI()["components"], "components")["schemas"], "schemas")
    }

    private func enumValues(_ name: String) throws -> Set<String> {
        Set(try #require(try object(try schemas()[name], name)["enum"] as? [String], "\(name) has no enum"))
    }

    private let everything = PaymentSessionOptions(
        chargeAmount: "1.00", currency: "EUR", description: "d", paymentConnector: "c", paymentMethod: .achDebit,
        tokenType: .oneTime,
        securityCode: false, postalCode: true, minPostalCodeLength: 3, validCardTypes: CardType.allCases, timeout: 5,
        bankAccountType: .commercialChecking, parameters: ["k": .string("v"), "n": .number("2.50"), "b": .bool(true)],
        confirmation: false, requireMatchingInputs: MatchableInput.allCases, input: "dtmf"
    )

    @Test func everyCreateFieldExistsInTheSpec() throws {
        let spec = try operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments.json")
        let sent = ["IdempotencyKey", "StatusCallback"] + everything.formFields().map(\.0)
        #expect(sent.count == 18)
        for name in sent { #expect(spec.properties[name] != nil, "\(name) is not in the spec") }
        #expect(Set(spec.required).isSubset(of: Set(sent)))
    }

    @Test func everyUpdateFieldExistsInTheSpec() throws {
        let spec = try operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments/{Sid}.json")
        for update in PaymentItem.allCases.map(PaymentUpdate.capture)
            + PaymentSessionStatus.allCases.map(PaymentUpdate.status)
        {
            let sent = ["IdempotencyKey", "StatusCallback"] + update.formFields().map(\.0)
            for name in sent { #expect(spec.properties[name] != nil) }
            #expect(Set(spec.required).isSubset(of: Set(sent)))
        }
    }

    @Test func everyEnumValueExistsInTheSpec() throws {
        let methodSpec = try enumValues("payments_enum_payment_method")
        #expect(Set(PaymentMethod.allCases.map(\.rawValue)) == methodSpec)
        let typeSpec = try enumValues("payments_enum_token_type")
        #expect(Set(TokenType.allCases.map(\.rawValue)) == typeSpec)
        let accountSpec = try enumValues("payments_enum_bank_account_type")
        #expect(Set(BankAccountType.allCases.map(\.rawValue)) == accountSpec)
        let captureSpec = try enumValues("payments_enum_capture")
        #expect(Set(PaymentItem.allCases.map(\.rawValue)) == captureSpec)
        let statusSpec = try enumValues("payments_enum_status")
        #expect(Set(PaymentSessionStatus.allCases.map(\.rawValue)) == statusSpec)
    }

    @Test func typedFieldsCarryValuesOfTheSpecType() throws {
        let spec = try operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments.json")
        for (name, value) in everything.formFields() {
            guard let property = spec.properties[name] as? [String: Any], let type = property["type"] as? String else {
                continue
            }
            switch type {
            case "boolean": #expect(value == "true" || value == "false", "\(name)")
            case "integer": #expect(Int(value) != nil, "\(name)")
            case "number": #expect(Double(value) != nil, "\(name)")
            default: break
            }
        }
    }

    @Test func theResponseSchemaMatchesWhatIsDecoded() throws {
        let resource = try object(
            try object(try schemas()["api.v2010.account.call.payments"], "payments schema")["properties"], "properties")
        #expect(Set(resource.keys) == ["account_sid", "call_sid", "sid", "date_created", "date_updated", "uri"])
    }
}
