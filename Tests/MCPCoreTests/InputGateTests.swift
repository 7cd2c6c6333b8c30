import Foundation
@testable import MCPCore
import Synchronization
import Testing

/// The stdio input gate: the handshake passes at once, a tool call waits until the host opens
/// the gate (or its bound passes), and nothing overtakes a held line.
@Suite struct InputGateTests {
    static func line(_ text: String) -> ArraySlice<UInt8> { ArraySlice(Array(text.utf8)) }

    /// When a `pass` returned, once it has.
    final class Returned: Sendable {
        private let instant = Mutex<ContinuousClock.Instant?>(nil)
        func mark() { instant.withLock { $0 = ContinuousClock.now } }
        var value: ContinuousClock.Instant? { instant.withLock { $0 } }
    }

    /// Runs `pass` on a thread of its own (as the stdio reader does) and says when it returned.
    static func passing(_ gate: InputGate, _ text: String) -> Returned {
        let returned = Returned()
        Thread {
            gate.pass(Self.line(text))
            returned.mark()
        }.start()
        return returned
    }

    static func waitFor(_ value: Returned) async throws -> ContinuousClock.Instant {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let instant = value.value { return instant }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw CancellationError()
    }

    @Test func theHandshakePassesAndAToolCallWaitsForTheGate() async throws {
        let gate = InputGate(holding: ["tools/call"], atMost: .seconds(30))
        let handshake = Self.passing(gate, #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        _ = try await Self.waitFor(handshake)
        let call = Self.passing(gate, #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#)
        try await Task.sleep(for: .milliseconds(200))
        #expect(call.value == nil, "held while the gate is shut")
        let opened = ContinuousClock.now
        gate.open()
        #expect(try await Self.waitFor(call) >= opened)
        #expect(gate.opened)
    }

    @Test func itsBoundLetsAHeldLineGoAndLeavesItOpen() async throws {
        let gate = InputGate(holding: ["tools/call"], atMost: .milliseconds(100))
        let started = ContinuousClock.now
        let call = Self.passing(gate, #"{"method":"tools/call"}"#)
        #expect(try await Self.waitFor(call) - started >= .milliseconds(100))
        #expect(gate.opened, "after its bound the gate stays open")
    }

    @Test func aMethodNameInsideAnArgumentIsStillAStringMatchOnly() {
        // The gate matches the quoted name anywhere in the line: a false hold costs a wait of at
        // most the bound, never a wrong answer. Names that merely contain it do not match.
        let gate = InputGate(holding: ["tools/call"], atMost: .seconds(30))
        gate.pass(Self.line(#"{"method":"tools/list","params":{"note":"tools/callable"}}"#))
        #expect(!gate.opened, "passed without opening")
    }
}

/// The gate of a host that serves before its tools exist, and gates in sequence.
@Suite struct InputGateCompositionTests {
    typealias Gates = InputGateTests

    @Test func allButTheHandshakeWaitsAndTheMethodIsReadNotMatched() async throws {
        let gate = InputGate(holdingAllBut: ["initialize", "ping"], atMost: .seconds(30))
        for passing in [
            #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            #"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            #"{"jsonrpc":"2.0","id":3,"result":{}}"#, // a response: no method
            "not json", // the engine answers it with a parse error
        ] {
            gate.pass(Gates.line(passing))
        }
        #expect(!gate.opened, "those passed without opening it")
        // A tool call that mentions "ping" is still a tool call: a substring match would pass it.
        let call = Gates.passing(gate, #"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ping"}}"#)
        try await Task.sleep(for: .milliseconds(200))
        #expect(call.value == nil, "held while the tools are not installed")
        let opened = ContinuousClock.now
        gate.open()
        #expect(try await Gates.waitFor(call) >= opened)
    }

    @Test func gatesInSequenceHoldALineUntilEachThatHoldsItOpens() async throws {
        let installed = InputGate(holdingAllBut: ["initialize"], atMost: .seconds(30))
        let listening = InputGate(holding: ["tools/call"], atMost: .seconds(30))
        let gate = InputGate(each: [installed, listening])
        let list = Gates.passing(gate, #"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        try await Task.sleep(for: .milliseconds(100))
        #expect(list.value == nil)
        installed.open()
        _ = try await Gates.waitFor(list)
        #expect(!gate.opened, "open only when every gate is")
        let call = Gates.passing(gate, #"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}"#)
        try await Task.sleep(for: .milliseconds(100))
        #expect(call.value == nil, "the second gate still holds a tool call")
        gate.open()
        _ = try await Gates.waitFor(call)
        #expect(gate.opened && listening.opened)
    }
}
