import Testing
@testable import MCPCore

@Suite struct JSONSchemaValidatorTests {
    let schema: JSONValue = [
        "type": "object",
        "properties": [
            "callSid": ["type": "string", "pattern": "^CA[0-9a-f]{32}$"],
            "amount": ["type": "number", "exclusiveMinimum": 0, "maximum": 10000],
            "count": ["type": "integer", "minimum": 1],
            "method": ["type": "string", "enum": ["credit-card", "ach-debit"]],
            "cards": ["type": "array", "items": ["type": "string"], "minItems": 1, "uniqueItems": true],
            "note": ["type": ["string", "null"], "maxLength": 5],
            "ref": ["$ref": "#/$defs/short"],
        ],
        "required": ["callSid"],
        "additionalProperties": false,
        "$defs": ["short": ["type": "string", "minLength": 2]],
    ]

    private func problems(_ value: JSONValue) -> [String] {
        JSONSchemaValidator(schema: schema).validate(value, rootName: "arguments").map(\.description)
    }

    @Test func acceptsAConformingValue() {
        #expect(
            problems([
                "callSid": .string("CA" + String(repeating: "a", count: 32)), "amount": 9.99, "count": 2,
                "method": "ach-debit", "cards": ["visa", "amex"], "note": .null, "ref": "ok",
            ]).isEmpty)
    }

    static let violations: [(JSONValue, String)] = [
        (.object([:]), "arguments.callSid: is required but missing"),
        (["callSid": 5], "arguments.callSid: expected string, got integer 5"),
        (["callSid": "CA1"], "arguments.callSid: must match the pattern ^CA[0-9a-f]{32}$"),
        (["callSid": "x", "amount": 0], "arguments.amount: must be greater than 0, got 0"),
        (["callSid": "x", "amount": 10001], "arguments.amount: must be at most 10000, got 10001"),
        (["callSid": "x", "count": 1.5], "arguments.count: expected integer, got number 1.5"),
        (
            ["callSid": "x", "method": "cash"],
            "arguments.method: must be one of \"credit-card\", \"ach-debit\", got \"cash\""
        ),
        (["callSid": "x", "cards": []], "arguments.cards: must have at least 1 items, got 0"),
        (["callSid": "x", "cards": ["a", "a"]], "arguments.cards: items must be unique"),
        (["callSid": "x", "cards": ["a", 2]], "arguments.cards[1]: expected string, got integer 2"),
        (["callSid": "x", "note": "toolong"], "arguments.note: must be at most 5 characters long, got 7"),
        (["callSid": "x", "ref": "a"], "arguments.ref: must be at least 2 characters long, got 1"),
        (
            ["callSid": "x", "cardNumber": "4111"],
            "arguments.cardNumber: is not a known property (known: amount, callSid, cards, count, method, note, ref)"
        ),
    ]

    @Test(arguments: violations)
    func namesTheProblem(value: JSONValue, expected: String) {
        #expect(problems(value).contains(expected), "got \(problems(value))")
    }

    /// Patterns are compiled once and kept: the same pattern decides the same way every time,
    /// a different one differently, and an invalid one is reported every time, not only once.
    @Test func compiledPatternsAreReusedAndInvalidOnesStayReported() {
        let sid = JSONSchemaValidator(schema: ["type": "string", "pattern": "^PK[0-9a-f]{4}$"])
        for _ in 0..<3 {
            #expect(sid.validate("PK12ab").isEmpty)
            #expect(sid.validate("PK12abc").map(\.message) == ["must match the pattern ^PK[0-9a-f]{4}$"])
        }
        #expect(JSONSchemaValidator(schema: ["type": "string", "pattern": "^CA"]).validate("PK12ab").count == 1)
        let broken = JSONSchemaValidator(schema: ["type": "string", "pattern": "(unclosed"])
        for _ in 0..<2 {
            #expect(
                broken.validate("x").map(\.message) == ["schema pattern (unclosed is not a valid regular expression"])
        }
    }

    /// The fixed-length matcher decides as the regex engine does, for the patterns it takes
    /// and strings near and far from them; patterns it does not take are left to the engine.
    @Test func fixedPatternsAgreeWithTheRegexEngine() throws {
        let patterns = [
            "^CA[0-9a-fA-F]{32}$", "^PK[0-9a-fA-F]{32}$", "^[A-Za-z]{3}$", "^a\\.b{2}[x-z_]$", "^$", "^[0-9]{0}z$",
        ]
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("CAPKabcfgzABFGZ0129.x_y-\n é")
        for pattern in patterns {
            let fixed = try #require(FixedPattern(pattern), "\(pattern) is fixed-length")
            let regex = try Regex(pattern)
            var samples = [
                "", "\n", "CA" + String(repeating: "a", count: 32), "PK" + String(repeating: "F", count: 32),
            ]
            samples += [
                "CA" + String(repeating: "0", count: 31) + "g", "USD", "USD\n", "usd", "US", "a.bbx", "a.bb_", "z",
            ]
            for length in [0, 1, 3, 4, 5, 33, 34, 35] {
                for _ in 0..<40 {
                    samples.append(String((0..<length).map { _ in alphabet.randomElement(using: &generator)! }))
                }
            }
            for sample in samples {
                let expected = (try? regex.firstMatch(in: sample)) != nil
                #expect(fixed.matches(sample) == expected, "\(pattern) on \(sample.debugDescription)")
            }
        }
        for pattern in ["^[0-9]+$", "^a|b$", "^(ab){2}$", "^[^a]$", "^\\d{3}$", "CA[0-9]{2}", "^[0-9]{2,3}$", "^é$"] {
            #expect(FixedPattern(pattern) == nil, "\(pattern) is left to the regex engine")
        }
    }

    @Test func treatsIntegralDoublesAsIntegers() {
        #expect(JSONSchemaValidator(schema: ["type": "integer"]).validate(.double(3)).isEmpty)
    }

    @Test func supportsCompositionKeywords() {
        let validator = JSONSchemaValidator(schema: [
            "anyOf": [["type": "string"], ["type": "integer"]], "not": ["const": "x"],
        ])
        #expect(validator.validate("a").isEmpty)
        #expect(validator.validate(3).isEmpty)
        #expect(!validator.validate(true).isEmpty)
        #expect(!validator.validate("x").isEmpty)
        let exclusive = JSONSchemaValidator(schema: ["oneOf": [["type": "number"], ["type": "integer"]]])
        #expect(!exclusive.validate(1).isEmpty)
        #expect(exclusive.validate(1.5).isEmpty)
    }

    @Test func survivesACyclicReference() {
        let validator = JSONSchemaValidator(schema: ["$ref": "#"])
        #expect(validator.validate(1).map(\.message) == ["schema nesting too deep to validate"])
    }
}
