#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import MCPCore
import Synchronization
import SpawnSupport

/// The C library's `close`, callable where a `close()` method hides it.
private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

/// A line-oriented connection from a client to a server: lines go out with `send`, lines
/// come back on `incoming`.
public protocol ClientChannel: Sendable {
    /// Every line the server writes, without its newline; finishes when the server's output
    /// ends.
    var incoming: AsyncStream<[UInt8]> { get }
    /// Sends one complete line (newline included).
    func send(_ line: [UInt8])
    /// Ends the client's output, which tells a stdio server to exit.
    func close()
}

/// Connects a client directly to an ``MCPServer`` in the same process, through the same
/// decoding and dispatch as a real transport but without a pipe.
public final class InProcessChannel: ClientChannel {
    public let incoming: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let connection: Mutex<ServerConnection?>

    private struct Sink: MessageSink {
        let continuation: AsyncStream<[UInt8]>.Continuation
        func send(_ line: [UInt8]) { continuation.yield(Array(line.dropLast())) }
    }

    /// A connection to `server` on behalf of `principal` (stdio's ``Principal/local`` by
    /// default; a test plays another client with another).
    public init(server: MCPServer, principal: Principal = .local) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        self.incoming = stream
        self.continuation = continuation
        self.connection = Mutex(server.connect(sink: Sink(continuation: continuation), principal: principal))
    }

    public func send(_ line: [UInt8]) {
        let connection = self.connection.withLock { $0 }
        connection?.receive(line.last == 0x0A ? line.dropLast() : line[...])
    }

    public func close() {
        let connection = self.connection.withLock { connection in
            defer { connection = nil }
            return connection
        }
        connection?.close()
        continuation.finish()
    }
}

/// Runs a server executable as a child process and speaks to it over its standard input
/// and output, exactly as an MCP host does. The child's standard error is inherited.
public final class ChildProcessChannel: ClientChannel {
    /// Why the child could not be started.
    public let incoming: AsyncStream<[UInt8]>
    /// The child's process id.
    public let processID: Int32
    private let input: Mutex<Int32>

    /// Starts `executable` with `arguments` (the executable's path is `argv[0]`).
    public init(executable: String, arguments: [String] = [], maximumLineLength: Int = 64 * 1024 * 1024) throws {
        let child = try ChildProcess(executable: executable, arguments: arguments)
        processID = child.processID
        input = Mutex(child.input)

        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        incoming = stream
        let output = child.output
        _ = PosixThread(name: "mcp-client-reader") {
            LineFramer.readLines(from: output, maximumLineLength: maximumLineLength) { event in
                if case .line(let line) = event { continuation.yield(Array(line)) }
            }
            closeDescriptor(output)
            continuation.finish()
        }
    }

    public func send(_ line: [UInt8]) {
        input.withLock { descriptor in
            guard descriptor >= 0 else { return }
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }

    public func close() {
        input.withLock { descriptor in
            if descriptor >= 0 { closeDescriptor(descriptor) }
            descriptor = -1
        }
    }

    /// Waits for the child to exit and returns its exit status (or 128 + signal).
    public func waitForExit() -> Int32 {
        ChildProcess.waitForExit(processID)
    }
}

/// A child process started with pipes on its standard input and output (standard error is
/// inherited): the raw material of ``ChildProcessChannel``, and of benchmarks that want
/// blocking reads.
public struct ChildProcess: Sendable {
    /// Why the child could not be started.
    public struct LaunchError: Error, CustomStringConvertible {
        public var description: String
    }

    public let processID: Int32
    /// The write end of the child's standard input.
    public let input: Int32
    /// The read end of the child's standard output.
    public let output: Int32

    /// Starts `executable`; with `discardStandardError` its standard error goes to /dev/null.
    public init(executable: String, arguments: [String] = [], discardStandardError: Bool = false) throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw LaunchError(description: "could not create pipes: errno \(errno)")
        }
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t?
        #else
        var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for descriptor in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, descriptor) }
        if discardStandardError { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
        // No other descriptor of this process (a listener, another child's pipes) in the child:
        // an inherited pipe end would keep its reader from ever seeing the end.
        _ = spawn_support_close_from(&actions, 3)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        closeDescriptor(toChild[0])
        closeDescriptor(fromChild[1])
        guard status == 0 else {
            closeDescriptor(toChild[1])
            closeDescriptor(fromChild[0])
            throw LaunchError(description: "could not start \(executable): \(String(cString: strerror(status)))")
        }
        signal(SIGPIPE, SIG_IGN)
        processID = pid
        input = toChild[1]
        output = fromChild[0]
    }

    /// Waits for process `pid` to exit and returns its exit status (or 128 + signal).
    public static func waitForExit(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
