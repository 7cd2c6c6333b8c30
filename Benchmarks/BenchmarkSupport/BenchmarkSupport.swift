public import MCPCore
public import MCPClient
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether `--smoke` was given: a handful of runs per figure, only to prove that the harness
/// starts everything and produces every figure (`scripts/test` runs it; the values mean nothing).
public let isSmoke = CommandLine.arguments.contains("--smoke")

/// The value of `--name N`, or `fallback` (`smoke` under `--smoke`).
public func option(_ name: String, _ fallback: Int, smoke: Int) -> Int {
    option(name, isSmoke ? smoke : fallback)
}

/// This benchmark's name, for messages.
public let benchmarkName: String = {
    let path = CommandLine.arguments.first ?? "benchmark"
    return String(path.split(separator: "/").last ?? Substring(path))
}()

/// Ends the benchmark with one line on standard error (what could not be done, why, and what
/// to run) and exit status 1. Never a stack trace.
public func giveUp(
    _ what: String, because why: String, run fix: String = "run Benchmarks/run, which builds everything it starts"
) -> Never {
    var line = "\(benchmarkName): \(what): \(why); \(fix)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// `body`'s value, or one line naming `what` and the error, then exit 1.
public func must<T>(
    _ what: String, run fix: String = "run Benchmarks/run, which builds everything it starts", _ body: () throws -> T
) -> T {
    do { return try body() } catch { giveUp(what, because: "\(error)", run: fix) }
}

/// `body`'s value, or one line naming `what` and the error, then exit 1.
public func must<T>(
    _ what: String, run fix: String = "run Benchmarks/run, which builds everything it starts",
    _ body: () async throws -> T
) async -> T {
    do { return try await body() } catch { giveUp(what, because: "\(error)", run: fix) }
}

/// `path` if it is an executable file; otherwise one line saying what to build, then exit 1.
public func requireExecutable(_ path: String) -> String {
    guard access(path, X_OK) == 0 else { giveUp("cannot start \(path)", because: "no such executable") }
    return path
}

/// The figures a benchmark promised and whether each was produced, for ``checkFigures()``.
private let figureLedger = Mutex<[(name: String, produced: Bool)]>([])

/// Notes that the figure `name` was (or was not) produced: `values` has finite numbers.
public func produced(_ name: String, _ values: [Double]) {
    let ok = !values.isEmpty && values.allSatisfy(\.isFinite)
    figureLedger.withLock { $0.append((name, ok)) }
}

/// Notes that the figure `name` was (or was not) produced: `value` is a finite number.
public func produced(_ name: String, _ value: Double) {
    produced(name, [value])
}

/// Exits 1, naming each figure, when any promised figure was not produced. Values are never
/// judged: only that each figure exists.
public func checkFigures() {
    let ledger = figureLedger.withLock { $0 }
    let missing = ledger.filter { !$0.produced }.map(\.name)
    if ledger.isEmpty { giveUp("no figures", because: "the benchmark recorded none", run: "fix the benchmark") }
    if !missing.isEmpty {
        giveUp("figures not produced", because: missing.joined(separator: "; "), run: "fix the benchmark")
    }
    if isSmoke {
        var line = "\(benchmarkName): all \(ledger.count) figures produced\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// Milliseconds on the monotonic clock.
public func nowMilliseconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) * 1e3 + Double(spec.tv_nsec) / 1e6
}

/// The `fraction` percentile (nearest rank) of `values`.
public func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
}

/// Right-pads `text` to `width` characters.
public func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// A figure with three decimals.
public func format(_ value: Double) -> String {
    guard value.isFinite else { return "n/a" }
    return String((value * 1000).rounded() / 1000)
}

/// The value of `--name N` on the command line, or `fallback`.
public func option(_ name: String, _ fallback: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1])
    else { return fallback }
    return value
}

/// The value of `--name TEXT` on the command line.
public func textOption(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

/// The directory of the running executable.
public func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path =
        count > 0
        ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

/// A typical payment status callback: the 15 form fields Twilio sends when a card number has
/// been captured (reference §4), for the signature and receiver benchmarks.
public let typicalPaymentCallback: [(String, String)] = [
    ("AccountSid", "AC" + String(repeating: "a1", count: 16)), ("CallSid", "CA" + String(repeating: "c3", count: 16)),
    ("Sid", "PK" + String(repeating: "d4", count: 16)), ("DateCreated", "2021-08-10T03:55:53.408Z"),
    ("DateUpdated", "2021-08-10T03:56:11.902Z"), ("PaymentConnector", "Default"), ("PaymentMethod", "credit-card"),
    ("TokenType", "reusable"), ("ChargeAmount", "9.99"), ("Capture", "payment-card-number"), ("PartialResult", "false"),
    ("Required", "security-code,expiration-date,postal-code"), ("PaymentCardNumber", "xxxxxxxxxxxx1111"),
    ("PaymentCardType", "visa"), ("ErrorType", ""),
]

/// A loopback port nothing listens on right now.
public func freePort() -> Int {
    #if canImport(Glibc)
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let descriptor = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Blocking line I/O with one child server, so the client adds as little as possible to what
/// is measured.
public struct Wire {
    public let child: ChildProcess
    private var buffer: [UInt8] = []

    public init(_ executable: String, _ arguments: [String] = [], quiet: Bool = true) throws {
        child = try ChildProcess(executable: executable, arguments: arguments, discardStandardError: quiet)
    }

    public func send(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(child.input, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// The last line `readLine` returned arrived in the read that ended at this time
    /// (``nowMilliseconds()``): a round trip ends when its response has arrived, before the
    /// client parses it, so a bigger answer is not charged the harness's own JSON parsing.
    public private(set) var lastLineArrival = 0.0
    private var lastRead = 0.0
    private var chunk = [UInt8](repeating: 0, count: 65536)

    public mutating func readLine() -> [UInt8]? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                lastLineArrival = lastRead
                return line
            }
            let count = chunk.withUnsafeMutableBytes { read(child.output, $0.baseAddress!, $0.count) }
            lastRead = nowMilliseconds()
            if count <= 0 { return nil }
            buffer += chunk[0..<count]
        }
    }

    /// Sends a request and returns the response with that id, skipping notifications.
    public mutating func request(id: Int, _ text: String) -> JSONValue? {
        send(text)
        while let line = readLine() {
            guard let message = try? JSONValue(parsing: line) else { continue }
            if message["id"] == .integer(Int64(id)) { return message }
        }
        return nil
    }

    /// Sends a request and returns the response with that id and the milliseconds from just
    /// before sending to the arrival of the response (``lastLineArrival``).
    public mutating func timedRequest(id: Int, _ text: String) -> (response: JSONValue, milliseconds: Double)? {
        let started = nowMilliseconds()
        guard let response = request(id: id, text) else { return nil }
        return (response, lastLineArrival - started)
    }

    /// The child's resident set size in bytes: `VmRSS` of `/proc/<pid>/status`, or another of its
    /// kilobyte fields (`RssAnon`: anonymous memory only; `RssFile`: pages mapped from files,
    /// code and libraries, which other processes may share and the kernel may drop).
    public func residentBytes(_ field: String = "VmRSS") -> Int {
        let fd = open("/proc/\(child.processID)/status", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return 0 }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }

    public func closeInput() { close(child.input) }

    public func finish() -> Int32 {
        let status = ChildProcess.waitForExit(child.processID)
        close(child.output)
        return status
    }
}

/// `path` if it is an executable file; otherwise one line saying how to install it, then exit 1.
public func requireExecutableOrExplain(_ path: String, install: String) -> String {
    guard access(path, X_OK) == 0 else { giveUp("cannot start \(path)", because: "it is not installed", run: install) }
    return path
}
