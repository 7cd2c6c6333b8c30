import Foundation
import Testing
@testable import PaymentEvents

@Suite struct WebhookEndpointsTests {
    static let secretA = "whsec_" + Data(repeating: 0x11, count: 32).base64EncodedString()
    static let secretB = "whsec_" + Data(repeating: 0x22, count: 24).base64EncodedString()
    static let url = "https://app.example.com/payment-events"

    static func load(
        _ environment: [String: String], file: String? = nil
    ) throws(WebhookConfigurationError) -> WebhookSettings {
        var environment = environment
        if file != nil { environment["AGENT_PAYMENTS_WEBHOOKS_FILE"] = "/etc/agent-payments/webhooks.json" }
        return try WebhookEndpoints.load({ environment[$0] }) { path in
            guard path == "/etc/agent-payments/webhooks.json", let file else { throw CocoaError(.fileNoSuchFile) }
            return Data(file.utf8)
        }
    }

    static func single(_ extra: [String: String] = [:]) -> [String: String] {
        ["AGENT_PAYMENTS_WEBHOOK_URL": url, "AGENT_PAYMENTS_WEBHOOK_SECRET": secretA].merging(extra) { $1 }
    }

    // MARK: The environment variables' endpoint

    @Test func nothingConfiguredIsNoEndpointsAndTheDefaults() throws {
        let settings = try Self.load([:])
        #expect(settings == WebhookSettings(endpoints: [], allowPrivateNetworks: false, maximumAge: .seconds(86_400)))
        // Empty values are unset, as elsewhere in the configuration.
        #expect(
            try Self.load([
                "AGENT_PAYMENTS_WEBHOOK_URL": " ", "AGENT_PAYMENTS_WEBHOOK_SECRET": "",
                "AGENT_PAYMENTS_WEBHOOKS_FILE": "",
            ]).endpoints
                .isEmpty)
    }

    @Test func theVariablesGiveOneEndpointNamedDefaultForEveryEvent() throws {
        let settings = try Self.load(Self.single())
        #expect(
            settings.endpoints == [
                WebhookEndpoint(name: "default", url: Self.url, secret: try WebhookSecret(parsing: Self.secretA))
            ])
        let endpoint = try #require(settings.endpoints.first)
        #expect(endpoint.events == .all)
        for type in WebhookEndpoints.eventTypes + ["payment.refunded"] { #expect(endpoint.accepts(type)) }
    }

    @Test func eventsSelectTypesByPattern() throws {
        let settings = try Self.load(
            Self.single(["AGENT_PAYMENTS_WEBHOOK_EVENTS": " payment.completed, payment.item.* ,,payment.completed"]))
        let endpoint = try #require(settings.endpoints.first)
        #expect(endpoint.events.patterns == ["payment.completed", "payment.item.*"])
        #expect(
            WebhookEndpoints.eventTypes.filter(endpoint.accepts) == [
                "payment.item.requested", "payment.item.progress", "payment.item.captured", "payment.item.invalid",
                "payment.completed",
            ])
    }

    @Test(arguments: [
        ("AGENT_PAYMENTS_WEBHOOK_URL", "AGENT_PAYMENTS_WEBHOOK_SECRET"),
        ("AGENT_PAYMENTS_WEBHOOK_SECRET", "AGENT_PAYMENTS_WEBHOOK_URL"),
        ("AGENT_PAYMENTS_WEBHOOK_EVENTS", "AGENT_PAYMENTS_WEBHOOK_URL"),
    ])
    func oneVariableWithoutItsPartnerNamesTheMissingOne(present: String, missing: String) {
        let values = [
            "AGENT_PAYMENTS_WEBHOOK_URL": Self.url, "AGENT_PAYMENTS_WEBHOOK_SECRET": Self.secretA,
            "AGENT_PAYMENTS_WEBHOOK_EVENTS": "payment.completed",
        ]
        #expect(throws: WebhookConfigurationError.missingVariable(missing, because: "\(present) is set")) {
            try Self.load([present: values[present]!])
        }
        let sentence = WebhookConfigurationError.missingVariable(missing, because: "\(present) is set").description
        #expect(sentence.hasPrefix("\(missing) is not set"))
        #expect(!sentence.contains(Self.secretA))
    }

    @Test func anUnusableSecretIsRefusedWithoutBeingQuoted() {
        let bad = "whsec_" + Data(repeating: 0x33, count: 16).base64EncodedString()
        let environment = ["AGENT_PAYMENTS_WEBHOOK_URL": Self.url, "AGENT_PAYMENTS_WEBHOOK_SECRET": bad]
        #expect(
            throws: WebhookConfigurationError.invalidSecret(
                source: "AGENT_PAYMENTS_WEBHOOK_SECRET", .wrongKeyLength(bytes: 16))
        ) {
            try Self.load(environment)
        }
        do {
            _ = try Self.load(environment)
        } catch {
            #expect(error.description.hasPrefix("AGENT_PAYMENTS_WEBHOOK_SECRET: "))
            #expect(!error.description.contains(String(bad.dropFirst(6).prefix(12))))
        }
    }

    // MARK: URLs, checked without DNS at load

    @Test(arguments: [
        ("https://app.example.com/events", false), ("https://app.example.com:8443/events?tenant=7", false),
        ("http://127.0.0.1:3000/e", false),
        ("http://[::1]:3000/e", false), ("http://localhost:3000/e", false), ("https://10.1.2.3/e", true),
        ("https://[fd00::1]/e", true),
        // A name is resolved only before a delivery.
        ("https://internal.corp.example/e", false),
    ])
    func acceptsURLsTheStaticCheckAllows(url: String, needsPrivate: Bool) throws {
        let environment = Self.single(["AGENT_PAYMENTS_WEBHOOK_URL": url])
        if needsPrivate {
            #expect(throws: WebhookConfigurationError.self) { try Self.load(environment) }
        }
        let settings = try Self.load(environment.merging(["AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE": "true"]) { $1 })
        #expect(settings.endpoints.map(\.url) == [url])
        #expect(settings.allowPrivateNetworks)
    }

    @Test(arguments: [
        (
            "http://app.example.com/events",
            WebhookTargetError.unsupportedScheme(target: "http://app.example.com/events", scheme: "http")
        ),
        ("https://user:pw@app.example.com/events", .userInformation(target: "https://app.example.com/events")),
        ("app.example.com/events", .invalidURL),
        (
            "https://169.254.169.254/latest/meta-data",
            .nonPublicAddress(
                target: "https://169.254.169.254/latest/meta-data",
                address: "169.254.169.254", range: .linkLocal, throughName: false)
        ),
    ])
    func refusesURLsTheStaticCheckRefuses(url: String, expected: WebhookTargetError) {
        #expect(throws: WebhookConfigurationError.invalidURL(source: "AGENT_PAYMENTS_WEBHOOK_URL", expected)) {
            try Self.load(Self.single(["AGENT_PAYMENTS_WEBHOOK_URL": url]))
        }
    }

    // MARK: Event patterns

    @Test(arguments: [
        ("*", WebhookEndpoints.eventTypes),
        ("payment.*", WebhookEndpoints.eventTypes),
        (
            "payment.item.*",
            ["payment.item.requested", "payment.item.progress", "payment.item.captured", "payment.item.invalid"]
        ),
        ("payment.completed", ["payment.completed"]),
        ("payment.call_ended", ["payment.call_ended"]),
        ("payment.failed,payment.cancelled", ["payment.failed", "payment.cancelled"]),
    ])
    func patternsMatchTheirTypes(patterns: String, matched: [String]) throws {
        let filter = try WebhookEventFilter(patterns: patterns.split(separator: ",").map(String.init))
        #expect(WebhookEndpoints.eventTypes.filter(filter.accepts) == matched)
        // A prefix pattern matches below its prefix, never the prefix itself or a longer word.
        #expect(!filter.accepts("payment") || patterns == "*")
        #expect(!filter.accepts("payment.items.x") || patterns == "*" || patterns == "payment.*")
        #expect(!filter.accepts("payment.item.") || patterns == "*" || patterns == "payment.*")
    }

    @Test(arguments: [
        ("payment.complete", WebhookEventFilterError.matchesNoEvent(pattern: "payment.complete")),
        ("payment.item.captured.*", .matchesNoEvent(pattern: "payment.item.captured.*")),
        ("refund.*", .matchesNoEvent(pattern: "refund.*")),
        ("payment..completed", .malformed(pattern: "payment..completed")),
        ("*.completed", .malformed(pattern: "*.completed")),
        ("payment.item*", .malformed(pattern: "payment.item*")),
        ("payment.*.captured", .malformed(pattern: "payment.*.captured")),
        ("Payment.Completed", .malformed(pattern: "Payment.Completed")),
        ("payment.completed.", .malformed(pattern: "payment.completed.")),
        (".*", .malformed(pattern: ".*")),
        ("**", .malformed(pattern: "**")),
        ("payment completed", .malformed(pattern: "payment completed")),
        (",, ,", .empty),
    ])
    func refusesPatternsThatAreMalformedOrMatchNothing(patterns: String, expected: WebhookEventFilterError) {
        let error = WebhookConfigurationError.invalidEvents(source: "AGENT_PAYMENTS_WEBHOOK_EVENTS", expected)
        #expect(throws: error) { try Self.load(Self.single(["AGENT_PAYMENTS_WEBHOOK_EVENTS": patterns])) }
        if expected != .empty {
            // A good pattern beside it does not save it.
            #expect(throws: error) {
                try Self.load(Self.single(["AGENT_PAYMENTS_WEBHOOK_EVENTS": "payment.completed," + patterns]))
            }
        }
        #expect(throws: expected) {
            try WebhookEventFilter(
                patterns: patterns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty })
        }
    }

    @Test func aPatternThatMatchesNothingListsTheTypes() {
        let sentence = WebhookEventFilterError.matchesNoEvent(pattern: "payment.complete").description
        #expect(sentence.contains("\"payment.complete\""))
        for type in WebhookEndpoints.eventTypes { #expect(sentence.contains(type)) }
    }

    // MARK: The other settings

    @Test(arguments: [
        ("true", true), ("TRUE", true), ("1", true), ("yes", true), ("false", false), ("0", false), ("no", false),
        (" true ", true),
    ])
    func readsTheAllowPrivateSetting(text: String, expected: Bool) throws {
        #expect(try Self.load(["AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE": text]).allowPrivateNetworks == expected)
    }

    @Test func refusesAnAllowPrivateSettingThatIsNoBoolean() {
        #expect(
            throws: WebhookConfigurationError.invalidValue(
                variable: "AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE", value: "maybe",
                expected: "true or false")
        ) {
            try Self.load(["AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE": "maybe"])
        }
    }

    @Test(arguments: [("60", 60), ("604800", 604_800), ("3600", 3600), ("86400", 86_400)])
    func readsTheMaximumAge(text: String, seconds: Int64) throws {
        #expect(try Self.load(["AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS": text]).maximumAge == .seconds(seconds))
    }

    @Test(arguments: ["59", "604801", "0", "-60", "1d", "3600.5", "1e5"])
    func refusesAMaximumAgeOutOfRange(text: String) {
        let error = #expect(throws: WebhookConfigurationError.self) {
            try Self.load(["AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS": text])
        }
        guard case .invalidValue(let variable, let value, _) = error else {
            Issue.record("\(String(describing: error))")
            return
        }
        #expect(variable == "AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS")
        #expect(value == text)
        #expect(error?.description.contains("from 60 to 604800") == true)
    }

    // MARK: The webhooks file

    static let twoEndpoints = """
        [
          {"name": "crm", "url": "https://crm.example.com/hooks/payments", "secret": "\(secretA)"},
          {"name": "voice-app", "url": "http://localhost:8080/events", "secret": "\(secretB)",
           "events": ["payment.item.*", "payment.completed"]}
        ]
        """

    @Test func theFileGivesSeveralEndpoints() throws {
        let settings = try Self.load([:], file: Self.twoEndpoints)
        #expect(
            settings.endpoints == [
                WebhookEndpoint(
                    name: "crm", url: "https://crm.example.com/hooks/payments",
                    secret: try WebhookSecret(parsing: Self.secretA)),
                WebhookEndpoint(
                    name: "voice-app", url: "http://localhost:8080/events",
                    secret: try WebhookSecret(parsing: Self.secretB),
                    events: try WebhookEventFilter(patterns: ["payment.item.*", "payment.completed"])),
            ])
        #expect(settings.endpoints[0].accepts("payment.failed"))
        #expect(!settings.endpoints[1].accepts("payment.failed"))
    }

    @Test func theVariablesAndTheFileTogetherGiveDefaultFirst() throws {
        let settings = try Self.load(Self.single(), file: Self.twoEndpoints)
        #expect(settings.endpoints.map(\.name) == ["default", "crm", "voice-app"])
    }

    @Test func namesAreUnique() {
        let clash = #"[{"name": "default", "url": "https://a.example.com/", "secret": "\#(Self.secretA)"}]"#
        #expect(throws: WebhookConfigurationError.duplicateName("default")) {
            try Self.load(Self.single(), file: clash)
        }
        #expect(throws: Never.self) { try Self.load([:], file: clash) }
        let twice =
            #"[{"name": "a", "url": "https://a.example.com/", "secret": "\#(Self.secretA)"},"#
            + #"{"name": "a", "url": "https://b.example.com/", "secret": "\#(Self.secretB)"}]"#
        #expect(throws: WebhookConfigurationError.duplicateName("a")) { try Self.load([:], file: twice) }
    }

    @Test(arguments: [
        ("{}", "it is not a JSON array of endpoints"),
        ("not json", "it is not a JSON array of endpoints"),
        ("[]", "it holds no endpoint"),
        ("[1]", "endpoint 1 is not a JSON object"),
        (#"[{"url": "https://a.example.com/", "secret": "S"}]"#, "endpoint 1 has no \"name\""),
        (#"[{"name": "a", "secret": "S"}]"#, "endpoint 1 has no \"url\""),
        (#"[{"name": "a", "url": "https://a.example.com/"}]"#, "endpoint 1 has no \"secret\""),
        (
            #"[{"name": "a", "url": "https://a.example.com/", "secret": 7}]"#,
            "endpoint 1's \"secret\" is not a non-empty string"
        ),
        (
            #"[{"name": "", "url": "https://a.example.com/", "secret": "S"}]"#,
            "endpoint 1's \"name\" is not a non-empty string"
        ),
        (
            #"[{"name": "a b", "url": "https://a.example.com/", "secret": "S"}]"#,
            "endpoint 1's name \"a b\" is not 1 to 64 letters, digits, '-', '_' or '.'"
        ),
        (
            #"[{"name": "a", "url": "https://a.example.com/", "secret": "S", "event": ["payment.completed"]}]"#,
            "endpoint 1 has the unknown key \"event\" (the keys are name, url, secret and events)"
        ),
        (
            #"[{"name": "a", "url": "https://a.example.com/", "secret": "S", "events": "payment.completed"}]"#,
            "endpoint 1's \"events\" is not an array of strings"
        ),
        (
            #"[{"name": "a", "url": "https://a.example.com/", "secret": "S", "events": [1]}]"#,
            "endpoint 1's \"events\" is not an array of strings"
        ),
    ])
    func refusesAMalformedFileSayingWhere(file: String, reason: String) {
        let file = file.replacingOccurrences(of: #""S""#, with: "\"\(Self.secretA)\"")
        #expect(
            throws: WebhookConfigurationError.malformedFile(path: "/etc/agent-payments/webhooks.json", reason: reason)
        ) {
            try Self.load([:], file: file)
        }
    }

    @Test func refusesAFileEndpointsSecretURLAndEventsNamingTheEndpoint() {
        let source = "endpoint \"crm\" in /etc/agent-payments/webhooks.json"
        #expect(throws: WebhookConfigurationError.invalidSecret(source: source, .notBase64)) {
            try Self.load([:], file: #"[{"name": "crm", "url": "https://a.example.com/", "secret": "whsec_!!!!"}]"#)
        }
        #expect(
            throws: WebhookConfigurationError.invalidURL(
                source: source, .unsupportedScheme(target: "http://a.example.com/", scheme: "http"))
        ) {
            try Self.load(
                [:], file: #"[{"name": "crm", "url": "http://a.example.com/", "secret": "\#(Self.secretA)"}]"#)
        }
        #expect(throws: WebhookConfigurationError.invalidEvents(source: source, .empty)) {
            try Self.load(
                [:],
                file: #"[{"name": "crm", "url": "https://a.example.com/", "secret": "\#(Self.secretA)", "events": []}]"#
            )
        }
        #expect(
            throws: WebhookConfigurationError.invalidEvents(source: source, .matchesNoEvent(pattern: "payment.done"))
        ) {
            try Self.load(
                [:],
                file:
                    #"[{"name": "crm", "url": "https://a.example.com/", "secret": "\#(Self.secretA)", "events": ["payment.done"]}]"#
            )
        }
        // The file's URLs obey the same setting.
        let privateURL = #"[{"name": "crm", "url": "https://192.168.4.2/", "secret": "\#(Self.secretA)"}]"#
        #expect(throws: WebhookConfigurationError.self) { try Self.load([:], file: privateURL) }
        #expect(throws: Never.self) {
            try Self.load(["AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE": "true"], file: privateURL)
        }
    }

    @Test func readsARealFileAndSaysWhenItCannot() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("webhooks-\(UUID().uuidString).json")
            .path
        try Data(Self.twoEndpoints.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(
            try WebhookEndpoints.load { ["AGENT_PAYMENTS_WEBHOOKS_FILE": path][$0] }.endpoints.map(\.name) == [
                "crm", "voice-app",
            ])

        let missing = path + ".missing"
        let error = #expect(throws: WebhookConfigurationError.self) {
            try WebhookEndpoints.load { ["AGENT_PAYMENTS_WEBHOOKS_FILE": missing][$0] }
        }
        guard case .unreadableFile(let reported, _) = error else {
            Issue.record("\(String(describing: error))")
            return
        }
        #expect(reported == missing)
        #expect(error?.description.hasPrefix("AGENT_PAYMENTS_WEBHOOKS_FILE \(missing) cannot be read: ") == true)
    }

    // MARK: Secrets stay secret

    @Test func noErrorOrDescriptionQuotesASecret() throws {
        let secret = Self.secretA
        let key = String(secret.dropFirst(6).prefix(16))
        let failing: [([String: String], String?)] = [
            (["AGENT_PAYMENTS_WEBHOOK_SECRET": secret], nil),
            (["AGENT_PAYMENTS_WEBHOOK_SECRET": secret + "x", "AGENT_PAYMENTS_WEBHOOK_URL": Self.url], nil),
            (
                [
                    "AGENT_PAYMENTS_WEBHOOK_SECRET": secret,
                    "AGENT_PAYMENTS_WEBHOOK_URL": "http://example.com/?s=\(secret)",
                ], nil
            ),
            ([:], #"[{"name": "a", "url": "https://a.example.com/", "secret": "\#(secret)x"}]"#),
            ([:], #"[{"name": "a", "url": "https://a.example.com/", "secret": "\#(secret)", "extra": 1}]"#),
            ([:], #"[{"name": "a", "url": "https://a.example.com/", "secret": "\#(secret)", "events": ["x"]}]"#),
            ([:], #"[{"name": "a", "url": "https://a.example.com/", "secret": ["\#(secret)"]}]"#),
            (
                [:],
                #"[{"name": "a", "url": "https://a.example.com/", "secret": "\#(secret)"}, {"name": "a", "url": "https://b.example.com/", "secret": "\#(secret)"}]"#
            ),
        ]
        for (environment, file) in failing {
            do {
                _ = try Self.load(environment, file: file)
                Issue.record("accepted \(environment.keys.sorted())")
            } catch {
                #expect(!error.description.contains(key), "\(error)")
                #expect(!String(reflecting: error).contains(key))
            }
        }
        let endpoint = try #require(
            try Self.load(Self.single(["AGENT_PAYMENTS_WEBHOOK_URL": Self.url + "?token=abc"])).endpoints.first)
        #expect(
            endpoint.description
                == "WebhookEndpoint(default, https://app.example.com/payment-events, events: *, secret: <redacted>)")
        var dumped = ""
        dump(endpoint, to: &dumped)
        #expect(!dumped.contains(key))
    }
}
