import Foundation
import Testing
@testable import TwilioPayments

/// Everything the client can send is in Twilio's own OpenAPI description.
@Suite struct OpenAPIConformanceTests {
    private func operation(_ path: String) -> (properties: [String: Any], required: [String]) {
        let paths = Fixture.openAPI["paths"] as! [String: Any]
        let post = (paths[path] as! [String: Any])["post"] as! [String: Any]
        let content = ((post["requestBody"] as! [String: Any])["content"] as! [String: Any])["application/x-www-form-urlencoded"] as! [String: Any]
        let schema = content["schema"] as! [String: Any]
        return (schema["properties"] as! [String: Any], schema["required"] as! [String])
    }

    private func enumValues(_ name: String) -> Set<String> {
        let schemas = (Fixture.openAPI["components"] as! [String: Any])["schemas"] as! [String: Any]
        return Set((schemas[name] as! [String: Any])["enum"] as! [String])
    }

    private let everything = PaymentSessionOptions(
        chargeAmount: "1.00", currency: "EUR", description: "d", paymentConnector: "c", paymentMethod: .achDebit, tokenType: .oneTime,
        securityCode: false, postalCode: true, minPostalCodeLength: 3, validCardTypes: CardType.allCases, timeout: 5,
        bankAccountType: .commercialChecking, parameters: ["k": "v"], confirmation: false, requireMatchingInputs: MatchableInput.allCases
    )

    @Test func everyCreateFieldExistsInTheSpec() {
        let spec = operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments.json")
        let sent = ["IdempotencyKey", "StatusCallback"] + everything.formFields().map(\.0)
        #expect(sent.count == 17)
        for name in sent { #expect(spec.properties[name] != nil, "\(name) is not in the spec") }
        #expect(Set(spec.required).isSubset(of: Set(sent)))
    }

    @Test func everyUpdateFieldExistsInTheSpec() {
        let spec = operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments/{Sid}.json")
        for update in CaptureItem.allCases.map(PaymentUpdate.capture) + PaymentSessionStatus.allCases.map(PaymentUpdate.status) {
            let sent = ["IdempotencyKey", "StatusCallback"] + update.formFields().map(\.0)
            for name in sent { #expect(spec.properties[name] != nil) }
            #expect(Set(spec.required).isSubset(of: Set(sent)))
        }
    }

    @Test func everyEnumValueExistsInTheSpec() {
        #expect(Set(PaymentMethod.allCases.map(\.rawValue)) == enumValues("payments_enum_payment_method"))
        #expect(Set(TokenType.allCases.map(\.rawValue)) == enumValues("payments_enum_token_type"))
        #expect(Set(BankAccountType.allCases.map(\.rawValue)) == enumValues("payments_enum_bank_account_type"))
        #expect(Set(CaptureItem.allCases.map(\.rawValue)) == enumValues("payments_enum_capture"))
        #expect(Set(PaymentSessionStatus.allCases.map(\.rawValue)) == enumValues("payments_enum_status"))
    }

    @Test func typedFieldsCarryValuesOfTheSpecType() {
        let spec = operation("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Payments.json")
        for (name, value) in everything.formFields() {
            guard let property = spec.properties[name] as? [String: Any], let type = property["type"] as? String else { continue }
            switch type {
            case "boolean": #expect(value == "true" || value == "false", "\(name)")
            case "integer": #expect(Int(value) != nil, "\(name)")
            case "number": #expect(Double(value) != nil, "\(name)")
            default: break
            }
        }
    }

    @Test func theResponseSchemaMatchesWhatIsDecoded() {
        let schemas = (Fixture.openAPI["components"] as! [String: Any])["schemas"] as! [String: Any]
        let resource = (schemas["api.v2010.account.call.payments"] as! [String: Any])["properties"] as! [String: Any]
        #expect(Set(resource.keys) == ["account_sid", "call_sid", "sid", "date_created", "date_updated", "uri"])
    }
}
