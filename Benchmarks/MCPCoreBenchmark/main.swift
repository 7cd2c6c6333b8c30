// MCPCore over real stdio: spawn → first response, ping round trip, exit after stdin EOF.
//
// Drives the release build of mcpcore-fixture-server (found beside this executable) with
// blocking pipe reads, so the client adds as little as possible to what is measured.
// Usage: MCPCoreBenchmark [--runs N] [--pings N]     (Benchmarks/run builds and runs it)
import MCPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func now() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) * 1e3 + Double(spec.tv_nsec) / 1e6
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
}

func executableDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let path = count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

/// Blocking line I/O with one child.
struct Wire {
    let child: ChildProcess
    var buffer: [UInt8] = []

    init(_ executable: String) throws {
        child = try ChildProcess(executable: executable)
    }

    func send(_ text: String) {
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

    mutating func readLine() -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            let count = chunk.withUnsafeMutableBytes { read(child.output, $0.baseAddress!, $0.count) }
            if count <= 0 { return nil }
            buffer += chunk[0..<count]
        }
    }

    func closeInput() { close(child.input) }

    func finish() -> Int32 {
        let status = ChildProcess.waitForExit(child.processID)
        close(child.output)
        return status
    }
}

var runs = 30
var pings = 10_000
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--runs": runs = arguments.popFirst().flatMap(Int.init) ?? runs
    case "--pings": pings = arguments.popFirst().flatMap(Int.init) ?? pings
    default: break
    }
}

let server = executableDirectory() + "/mcpcore-fixture-server"
guard access(server, X_OK) == 0 else {
    var message = "MCPCoreBenchmark: \(server) not found; build it first (Benchmarks/run does)\n"
    message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}

let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#
let discover = #"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#

var spawnInitialize: [Double] = []
var spawnDiscover: [Double] = []
var exitAfterEOF: [Double] = []
for run in 0..<(runs * 2) {
    let started = now()
    var wire = try Wire(server)
    wire.send(run % 2 == 0 ? initialize : discover)
    guard wire.readLine() != nil else { fatalError("no answer from the server") }
    let answered = now()
    if run % 2 == 0 { spawnInitialize.append(answered - started) } else { spawnDiscover.append(answered - started) }
    let closing = now()
    wire.closeInput()
    let status = wire.finish()
    exitAfterEOF.append(now() - closing)
    precondition(status == 0, "server exited with status \(status)")
}

var wire = try Wire(server)
wire.send(initialize)
_ = wire.readLine()
wire.send(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
var roundTrips: [Double] = []
roundTrips.reserveCapacity(pings)
for index in 0..<(pings + 200) {
    let started = now()
    wire.send(#"{"jsonrpc":"2.0","id":\#(index + 2),"method":"ping"}"#)
    guard wire.readLine() != nil else { fatalError("no pong") }
    if index >= 200 { roundTrips.append(now() - started) }  // the first 200 warm up
}
wire.closeInput()
_ = wire.finish()

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func row(_ name: String, _ values: [Double], target: String, peers: String) -> String {
    func format(_ value: Double) -> String {
        let text = String((value * 1000).rounded() / 1000)
        return pad(text, 8)
    }
    return "| \(pad(name, 31)) | \(format(percentile(values, 0.5))) | \(format(percentile(values, 0.9))) | \(pad(target, 7)) | \(peers) |"
}

print("MCPCore over stdio (\(runs) spawns per mode, \(pings) pings; milliseconds)")
print("| measure                         | median   | p90      | target  | Swift SDK 0.12.1 / Python MCPServer (issue figures) |")
print("|---------------------------------|----------|----------|---------|------------------------------------------------------|")
print(row("spawn → initialize result", spawnInitialize, target: "≤ 5", peers: "11.4 / 393"))
print(row("spawn → server/discover result", spawnDiscover, target: "≤ 5", peers: "n/a / n/a"))
print(row("ping round trip", roundTrips, target: "≤ 0.05", peers: "10.0 / 0.26"))
print(row("exit after stdin EOF", exitAfterEOF, target: "≤ 5", peers: "15 / 114"))
