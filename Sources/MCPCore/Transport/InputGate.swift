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
public final class InputGate: Sendable {
    private let isOpen = Atomic<Bool>(false)
    private let needles: [[UInt8]]
    private let bound: Duration

    /// A shut gate holding lines that name one of `methods` (as a JSON string) for at most `bound`.
    public init(holding methods: [String], atMost bound: Duration) {
        needles = methods.map { Array("\"\($0)\"".utf8) }
        self.bound = bound
    }

    /// Lets every line through from now on.
    public func open() { isOpen.store(true, ordering: .releasing) }

    /// Whether the gate is open.
    public var opened: Bool { isOpen.load(ordering: .acquiring) }

    /// Returns at once unless `line` names a held method and the gate is shut; then blocks the
    /// calling thread (the reader's own) until it opens or its bound passes.
    func pass(_ line: ArraySlice<UInt8>) {
        guard !opened, needles.contains(where: { Self.contains(line, $0) }) else { return }
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
