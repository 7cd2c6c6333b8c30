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
        await start(server: server).finished()
    }

    /// Starts serving `server` at once and returns without waiting: the reader thread takes
    /// lines from now on, so a host can answer the handshake while it starts the rest of
    /// itself, and await ``Serving/finished()`` later (once).
    public func start(server: MCPServer) -> Serving {
        let writer = OutputWriter(descriptor: outputDescriptor)
        let connection = server.connect(sink: writer)
        let serving = Serving(connection: connection, writer: writer)
        let input = inputDescriptor
        let limit = maximumLineLength
        let gate = gate
        _ = PosixThread(name: "mcp-reader") {
            LineFramer.readLines(from: input, maximumLineLength: limit) { event in
                switch event {
                case .line(let line):
                    gate?.pass(line)
                    connection.receive(line)
                case .oversized: connection.receiveOversizedLine(limit: limit)
                }
            }
            serving.end()
        }
        server.onStop { serving.end() }
        return serving
    }

    /// A stdio connection being served (``StdioTransport/start(server:)``).
    public final class Serving: Sendable {
        private let connection: ServerConnection
        private let writer: OutputWriter
        /// Whether the input ended (or the server stopped), and who waits for it.
        private let state = Mutex<(ended: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

        init(connection: ServerConnection, writer: OutputWriter) {
            self.connection = connection
            self.writer = writer
        }

        /// Whether the input ended or the server stopped: a host that began serving before the
        /// rest of itself need not start the rest for a client that has left.
        public var hasEnded: Bool { state.withLock { $0.ended } }
        /// Whether ``finished()`` is waiting for the end.
        var isAwaited: Bool { state.withLock { $0.waiter != nil } }

        /// Called by whichever comes first, the end of input or a stop (later calls do nothing).
        func end() {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.ended = true
                return state.waiter.take()
            }?.resume()
        }

        /// Waits until the input ends or the server is stopped, then cancels running requests and
        /// returns once every queued message is written.
        public func finished() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ended = state.withLock { state in
                    if !state.ended { state.waiter = continuation }
                    return state.ended
                }
                if ended { continuation.resume() }
            }
            connection.close()
            writer.finish()
        }
    }
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
