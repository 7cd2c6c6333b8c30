import Testing
@testable import MCPCore

@Suite struct LineFramerTests {
    private func frame(_ chunks: [String], limit: Int = 16) -> [String] {
        var framer = LineFramer(maximumLineLength: limit)
        var events: [String] = []
        for chunk in chunks {
            framer.append(Array(chunk.utf8)[...]) { event in
                switch event {
                case .line(let line): events.append(String(decoding: line, as: UTF8.self))
                case .oversized: events.append("<oversized>")
                }
            }
        }
        if let last = framer.finish() { events.append(String(decoding: last, as: UTF8.self) + "<eof>") }
        return events
    }

    @Test func splitsLinesAcrossChunks() {
        #expect(frame(["ab", "c\nde", "f\n\ng\r\n"]) == ["abc", "def", "g"])
    }

    @Test func deliversAnUnterminatedLastLine() {
        #expect(frame(["one\ntwo"]) == ["one", "two<eof>"])
    }

    @Test func discardsOversizedLinesAndRecovers() {
        #expect(frame(["0123456789", "0123456789", "more\nok\n"]) == ["<oversized>", "ok"])
        #expect(frame([String(repeating: "x", count: 20) + "\nok\n"]) == ["<oversized>", "ok"])
        #expect(frame(["0123456789", "0123456\nok\n"]) == ["<oversized>", "ok"])
    }
}
