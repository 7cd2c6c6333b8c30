#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The stdio transport: newline-delimited JSON-RPC on standard input and output.
///
/// A dedicated thread reads standard input and hands each line to the connection as soon as
/// it arrives (no polling); an ``OutputWriter`` owns standard output. Nothing else in
/// MCPCore writes to standard output. End of file on standard input ends the connection.
public struct StdioTransport: Sendable {
    public let inputDescriptor: Int32
    public let outputDescriptor: Int32
    public let maximumLineLength: Int
    /// Holds back the lines that need what the host is still starting, if given.
    public let gate: InputGate?

    public init(
        inputDescriptor: Int32 = 0, outputDescriptor: Int32 = 1, maximumLineLength: Int = 4 * 1024 * 1024,
        gate: InputGate? = nil
    ) {
        self.inputDescriptor = inputDescriptor
        self.outputDescriptor = outputDescriptor
        self.maximumLineLength = maximumLineLength
        self.gate = gate
    }

    /// Serves `server` until the input ends or the server is stopped (``MCPServer/stop()``),
    /// then cancels running requests, flushes the output and returns.
    public func run(server: MCPServer) async {
        let writer = OutputWriter(descriptor: outputDescriptor)
        let connection = server.connect(sink: writer)
        let input = inputDescriptor
        let limit = maximumLineLength
        let gate = gate
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // Whichever comes first, end of input or a stop, resumes the wait, once.
            let once = ResumeOnce(continuation)
            let resume: @Sendable () -> Void = { once.resume() }
            _ = PosixThread(name: "mcp-reader") {
                LineFramer.readLines(from: input, maximumLineLength: limit) { event in
                    switch event {
                    case .line(let line):
                        gate?.pass(line)
                        connection.receive(line)
                    case .oversized: connection.receiveOversizedLine(limit: limit)
                    }
                }
                resume()
            }
            server.onStop(resume)
        }
        connection.close()
        writer.finish()
    }
}

/// Resumes a continuation at most once, whoever asks first.
final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, Never>?>

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = Mutex(continuation) }

    func resume() { continuation.withLock { $0.take() }?.resume() }
}

/// Splits a byte stream into lines, bounding their length.
public struct LineFramer: Sendable {
    /// What the framer found.
    public enum Event {
        /// One line without its terminator (a trailing carriage return is removed too).
        case line(ArraySlice<UInt8>)
        /// A line longer than the limit, discarded up to its newline.
        case oversized
    }

    public let maximumLineLength: Int
    private var pending: [UInt8] = []
    private var discarding = false

    public init(maximumLineLength: Int) {
        self.maximumLineLength = maximumLineLength
    }

    /// Feeds bytes; calls `emit` for each complete line or oversized line.
    public mutating func append(_ bytes: ArraySlice<UInt8>, _ emit: (Event) -> Void) {
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: 0x0A) {
            let piece = bytes[start..<newline]
            start = newline + 1
            if discarding {
                discarding = false
                continue
            }
            if pending.isEmpty {
                if piece.count > maximumLineLength {
                    emit(.oversized)
                    continue
                }
                emitLine(piece, emit)
            } else {
                pending.append(contentsOf: piece)
                let line = pending
                pending.removeAll(keepingCapacity: true)
                if line.count > maximumLineLength {
                    emit(.oversized)
                    continue
                }
                emitLine(line[...], emit)
            }
        }
        guard !discarding else { return }
        pending.append(contentsOf: bytes[start...])
        if pending.count > maximumLineLength {
            pending.removeAll()
            discarding = true
            emit(.oversized)
        }
    }

    /// Reads `descriptor` until end of file (blocking: run it on its own thread), reporting
    /// every line, oversized line and, at the end, an unterminated last line.
    public static func readLines(from descriptor: Int32, maximumLineLength: Int, _ emit: (Event) -> Void) {
        var framer = LineFramer(maximumLineLength: maximumLineLength)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            framer.append(buffer[0..<count], emit)
        }
        if let last = framer.finish() { emit(.line(last)) }
    }

    /// The unterminated last line at end of input, if any.
    public mutating func finish() -> ArraySlice<UInt8>? {
        defer { pending.removeAll() }
        guard !discarding, !isBlank(pending[...]) else { return nil }
        return trimmed(pending[...])
    }

    private func emitLine(_ line: ArraySlice<UInt8>, _ emit: (Event) -> Void) {
        if isBlank(line) { return }
        emit(.line(trimmed(line)))
    }

    private func trimmed(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        line.last == 0x0D ? line.dropLast() : line
    }

    private func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}
