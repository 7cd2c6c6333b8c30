import Testing
@testable import MCPCore

@Suite struct URITemplateTests {
    let status = try! URITemplate("payment://{callSid}/{paymentSid}/status")

    @Test func expandsAndMatchesTheStatusTemplate() {
        let uri = status.expand(["callSid": "CA1", "paymentSid": "PK2"])
        #expect(uri == "payment://CA1/PK2/status")
        #expect(status.match(uri) == ["callSid": "CA1", "paymentSid": "PK2"])
        #expect(status.variableNames == ["callSid", "paymentSid"])
    }

    @Test func percentEncodesOnExpansionAndDecodesOnMatch() {
        let uri = status.expand(["callSid": "a/b c", "paymentSid": "é"])
        #expect(uri == "payment://a%2Fb%20c/%C3%A9/status")
        #expect(status.match(uri) == ["callSid": "a/b c", "paymentSid": "é"])
    }

    @Test(arguments: [
        "payment://CA1/status", "payment://CA1/PK2/status/extra", "payment:///PK2/status", "other://CA1/PK2/status",
        "payment://CA1/PK2/x/status", "payment://CA1/PK2/statu", "payment://C%ZZ/PK2/status",
    ])
    func refusesNonMembers(uri: String) {
        #expect(status.match(uri) == nil)
    }

    @Test(arguments: ["a{", "a}b", "{+x}", "{a,b}", "{}", "{a}{b}"])
    func rejectsTemplatesItCannotMatch(text: String) {
        #expect(throws: URITemplate.Error.self) { try URITemplate(text) }
    }

    @Test func matchesATemplateEndingInAVariable() throws {
        let template = try URITemplate("file:///{name}")
        #expect(template.match("file:///readme") == ["name": "readme"])
        #expect(template.match("file:///a/b") == nil)
    }
}
