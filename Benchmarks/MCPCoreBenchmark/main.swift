// MCPCore over real stdio: spawn → first response, ping round trip, exit after stdin EOF.
//
// Drives the release build of mcpcore-fixture-server (found beside this executable) with
// blocking pipe reads, so the client adds as little as possible to what is measured.
// Usage: MCPCoreBenchmark [--runs N] [--pings N]     (Benchmarks/run builds and runs it)
import BenchmarkSupport
import MCPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func now() -> Double { nowMilliseconds() }

let runs = option("--runs", 30, smoke: 2)
let pings = option("--pings", 10_000, smoke: 20)
let warmUp = isSmoke ? 5 : 200

let server = requireExecutable(executableDirectory() + "/mcpcore-fixture-server")

let initialize =
    #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#
let discover =
    #"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#

var spawnInitialize: [Double] = []
var spawnDiscover: [Double] = []
var exitAfterEOF: [Double] = []
for run in 0..<(runs * 2) {
    let started = now()
    var wire = must("starting \(server)") { try Wire(server) }
    wire.send(run % 2 == 0 ? initialize : discover)
    guard wire.readLine() != nil else { giveUp("no answer from \(server)", because: "it closed its output") }
    let answered = now()
    if run % 2 == 0 { spawnInitialize.append(answered - started) } else { spawnDiscover.append(answered - started) }
    let closing = now()
    wire.closeInput()
    let status = wire.finish()
    exitAfterEOF.append(now() - closing)
    if status != 0 { giveUp("\(server) exited with status \(status)", because: "it should exit 0 after stdin EOF") }
}

var wire = must("starting \(server)") { try Wire(server) }
wire.send(initialize)
_ = wire.readLine()
wire.send(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
var roundTrips: [Double] = []
roundTrips.reserveCapacity(pings)
for index in 0..<(pings + warmUp) {
    let started = now()
    wire.send(#"{"jsonrpc":"2.0","id":\#(index + 2),"method":"ping"}"#)
    guard wire.readLine() != nil else { giveUp("no pong from \(server)", because: "it closed its output") }
    if index >= warmUp { roundTrips.append(now() - started) } // the first ones warm up
}
wire.closeInput()
_ = wire.finish()

func row(_ name: String, _ values: [Double], target: String, peers: String) -> String {
    produced(name, values)
    return
        "| \(pad(name, 31)) | \(pad(format(percentile(values, 0.5)), 8)) | \(pad(format(percentile(values, 0.9)), 8)) | \(pad(target, 7)) | \(peers) |"
}

print("MCPCore over stdio (\(runs) spawns per mode, \(pings) pings; milliseconds)")
print(
    "| measure                         | median   | p90      | target  | Swift SDK 0.12.1 / Python MCPServer (issue figures) |"
)
print(
    "|---------------------------------|----------|----------|---------|------------------------------------------------------|"
)
print(row("spawn → initialize result", spawnInitialize, target: "≤ 5", peers: "11.4 / 393"))
print(row("spawn → server/discover result", spawnDiscover, target: "≤ 5", peers: "n/a / n/a"))
print(row("ping round trip", roundTrips, target: "≤ 0.05", peers: "10.0 / 0.26"))
print(row("exit after stdin EOF", exitAfterEOF, target: "≤ 5", peers: "15 / 114"))
checkFigures()
