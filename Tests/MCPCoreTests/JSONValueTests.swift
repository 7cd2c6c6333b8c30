import Foundation
import Testing
@testable import MCPCore

@Suite struct JSONValueParsingTests {
    static let samples: [(String, JSONValue)] = [
        ("null", .null), ("true", .bool(true)), ("false", .bool(false)),
        ("0", .integer(0)), ("-12", .integer(-12)), ("9223372036854775807", .integer(.max)),
        ("1.5", .double(1.5)), ("1e3", .double(1000)), ("-0.25E-2", .double(-0.0025)),
        ("9223372036854775808", .double(9223372036854775808)),
        ("\"hi\"", .string("hi")), ("[]", .array([])), ("{}", .object([:])),
        ("[1,[2,{\"a\":null}]]", .array([1, .array([2, ["a": .null]])])),
        (" \n\t{ \"k\" : [ true , 1.0 ] } \r\n", .object(["k": .array([true, .double(1.0)])])),
    ]

    @Test(arguments: samples)
    func parsesEveryKindOfValue(text: String, expected: JSONValue) throws {
        #expect(try JSONValue(parsing: text) == expected)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try JSONValue(parsing: #""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#)
        #expect(value == .string("a\"b\\c/d\u{8}\u{c}\n\r\té😀"))
    }

    @Test func keepsRawMultibyteUTF8() throws {
        #expect(try JSONValue(parsing: "\"żółw 🐢\"") == .string("żółw 🐢"))
    }

    @Test(arguments: [
        "", "nul", "tru", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[1 2]", "01", "1.", "1e", "-", "+1",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00x\"", "\"tab\there\"", "[1] 2", "NaN",
        "Infinity",
    ])
    func rejectsInvalidText(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func rejectsInvalidUTF8() throws {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
        // A truncated sequence, an overlong one, a surrogate, beyond U+10FFFF; with and without an escape.
        for bad: [UInt8] in [[0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22] + bad + [0x22]) }
            #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0x5C, 0x6E] + bad + [0x22]) }
        }
        #expect(try JSONValue(parsing: Array("\"été 😀\"".utf8)) == .string("été 😀"))
        #expect(try JSONValue(parsing: Array("\"\\n été\"".utf8)) == .string("\n été"))
    }

    @Test func reportsWhereTheTextWentWrong() {
        #expect(throws: JSONParseError(offset: 6, reason: "expected ',' or ']' in array")) {
            try JSONValue(parsing: "[1, 2 3]")
        }
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect((try? JSONValue(parsing: fine)) != nil)
    }

    @Test func laterDuplicateKeysWin() throws {
        #expect(try JSONValue(parsing: #"{"a":1,"a":2}"#) == ["a": 2])
    }
}

@Suite struct JSONValueSerializationTests {
    @Test func writesCompactSortedJSON() {
        let value: JSONValue = ["b": [1, 2.5, true, .null], "a": "x"]
        #expect(value.serialized() == #"{"a":"x","b":[1,2.5,true,null]}"#)
    }

    @Test func escapesEverythingThatWouldBreakALine() {
        let value = JSONValue.string("line\nbreak\r\t\"q\"\\ \u{1} \u{1f} é")
        let text = value.serialized()
        #expect(!text.contains("\n"))
        #expect(text == #""line\nbreak\r\t\"q\"\\ \u0001 \u001f é""#)
    }

    /// The escaping against an independent reader: seeded random strings of every kind of byte
    /// (control bytes, quotes, backslashes, DEL, two-, three- and four-byte characters), alone and
    /// as keys, read back by Foundation's `JSONSerialization`, and never a raw control byte.
    @Test func everyStringReadsBackThroughFoundation() throws {
        var seed: UInt64 = 0x5EED
        func next(_ bound: UInt64) -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (seed >> 33) % bound
        }
        for _ in 0..<2_000 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<next(48) {
                let value: UInt32 =
                    switch next(5) {
                    case 0: UInt32(next(0x20))
                    case 1: [0x22, 0x5C, 0x2F, 0x7F][Int(next(4))]
                    case 2: UInt32(0x20 + next(0x60))
                    case 3: UInt32(0xA0 + next(0x700))
                    default: [0x20AC, 0xFFFD, 0x1F600, 0x10FFFF][Int(next(4))]
                    }
                scalars.append(Unicode.Scalar(value)!)
            }
            let string = String(scalars)
            let bytes = JSONValue.array([.string(string), .object([string: .string(string)])]).serializedBytes()
            #expect(!bytes.contains { $0 < 0x20 })
            let read = try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? [Any])
            #expect(read.first as? String == string)
            #expect((read.last as? [String: String]) == [string: string])
        }
    }

    static let roundTrips: [JSONValue] = [
        .integer(.min), .integer(.max), .double(0.1), .double(-1e-7), .double(1e300), .double(3.0),
        .bool(true), .bool(false), .null, .string(""), .string("😀\u{0}"),
        ["nested": ["deep": [["x": .integer(1)], .array([])]], "n": .double(2.25)],
    ]

    @Test(arguments: roundTrips)
    func roundTripsFaithfully(value: JSONValue) throws {
        let reparsed = try JSONValue(parsing: value.serializedBytes())
        #expect(reparsed == value)
        if case .integer = value { #expect(value.serialized().allSatisfy { $0 == "-" || $0.isNumber }) }
    }

    @Test func keepsBooleansApartFromNumbers() throws {
        let value = try JSONValue(parsing: #"[true, 1, 1.0, false, 0]"#)
        #expect(value == .array([.bool(true), .integer(1), .double(1), .bool(false), .integer(0)]))
        #expect(value.serialized() == "[true,1,1.0,false,0]")
    }

    @Test func writesNonFiniteNumbersAsNull() {
        #expect(JSONValue.double(.infinity).serialized() == "null")
    }

    @Test func accessorsReadTheExpectedKinds() {
        let value: JSONValue = ["s": "x", "i": 3, "d": 2.0, "b": true, "a": [1], "o": ["k": "v"]]
        #expect(value["s"]?.stringValue == "x")
        #expect(value["i"]?.intValue == 3 && value["d"]?.intValue == 2)
        #expect(value["b"]?.boolValue == true && value["i"]?.boolValue == nil)
        #expect(value["a"]?.arrayValue == [1] && value["o"]?["k"] == "v")
        #expect(value["missing"] == nil && JSONValue.string("x")["k"] == nil)
        #expect(value.setting("s", to: nil)["s"] == nil)
        #expect(JSONValue.object(dropping: ["a": 1, "b": nil]) == ["a": 1])
    }
}
