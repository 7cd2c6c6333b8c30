#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Holds back the stdio input lines that need what the host is still starting — a tool call
/// before the host's listener is up, say — while everything else (`initialize`, `tools/list`) is
/// answered at once, so that a client's handshake overlaps the host's start instead of waiting
/// for it. A held line waits on the reader thread (so later lines keep their order) until
/// ``open()`` or until `bound` has passed; after either, the gate stays open.
///
/// Gates compose (``init(each:)``): a host that serves before its tools exist holds every line
/// but the handshake until they do (``init(holdingAllBut:atMost:)``), then tool calls until its
/// listener is up.
public final class InputGate: Sendable {
    /// Which lines a shut gate holds.
    private enum Rule: Sendable {
        /// Lines that name one of these methods, as JSON strings, anywhere (a cheap match: a false
        /// hold only waits).
        case naming([[UInt8]])
        /// Requests and notifications whose method is none of these (read from the parsed line:
        /// a false pass would be a wrong answer).
        case allBut(Set<String>)
        /// Whatever any of these gates holds, each in turn.
        case each([InputGate])
    }

    private let isOpen = Atomic<Bool>(false)
    private let rule: Rule
    private let bound: Duration

    /// A shut gate holding lines that name one of `methods` (as a JSON string) for at most `bound`.
    public init(holding methods: [String], atMost bound: Duration) {
        rule = .naming(methods.map { Array("\"\($0)\"".utf8) })
        self.bound = bound
    }

    /// A shut gate holding every request and notification whose method is not one of `methods`
    /// (say `initialize` and `ping`, answered while the host still installs its tools) for at most
    /// `bound`. Lines that are not JSON-RPC messages with a method pass: the engine answers them.
    public init(holdingAllBut methods: Set<String>, atMost bound: Duration) {
        rule = .allBut(methods)
        self.bound = bound
    }

    /// A gate that holds a line while any of `gates` would, in their order; it is open when
    /// they all are, and ``open()`` opens them all.
    public init(each gates: [InputGate]) {
        rule = .each(gates)
        bound = .zero
    }

    /// Lets every line through from now on.
    public func open() {
        if case .each(let gates) = rule { gates.forEach { $0.open() } }
        isOpen.store(true, ordering: .releasing)
    }

    /// Whether the gate is open.
    public var opened: Bool {
        if case .each(let gates) = rule { return gates.allSatisfy(\.opened) }
        return isOpen.load(ordering: .acquiring)
    }

    /// Returns at once unless the gate is shut and holds `line`; then blocks the calling thread
    /// (the reader's own) until it opens or its bound passes.
    func pass(_ line: ArraySlice<UInt8>) {
        guard !opened else { return }
        switch rule {
        case .each(let gates):
            for gate in gates { gate.pass(line) }
            return
        case .naming(let needles):
            guard needles.contains(where: { Self.contains(line, $0) }) else { return }
        case .allBut(let methods):
            guard let method = try? JSONValue(parsing: line)["method"]?.stringValue, !methods.contains(method)
            else { return }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + bound
        while !opened, clock.now < deadline { usleep(500) }
        open()
    }

    static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        var start = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while start <= last {
            if haystack[start] == needle[0], haystack[start..<start + needle.count].elementsEqual(needle) {
                return true
            }
            start += 1
        }
        return false
    }
}
