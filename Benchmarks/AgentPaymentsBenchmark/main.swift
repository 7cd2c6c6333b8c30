// The whole server against its peers, measured the same way in one run: agent-payments
// --simulate (release build beside this executable), and the same tool names with Twilio stubbed
// on the official MCP Swift SDK (SwiftSDKPeer, built beside this executable) and on the official
// Python SDK (Benchmarks/peers/python_peer.py).
//
// Usage: AgentPaymentsBenchmark --python PATH --peer PATH [--runs 30] [--pings 10000]
//                               [--payments 50] [--sessions 10000] [--smoke] [--ours-only]
import BenchmarkSupport
import MCPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let runs = option("--runs", 30, smoke: 2)
let pings = option("--pings", 10_000, smoke: 20)
let payments = option("--payments", 50, smoke: 2)
let sessionCount = option("--sessions", 10_000, smoke: 20)
let warmUp = isSmoke ? 5 : 200
let ours = (executable: requireExecutable(executableDirectory() + "/agent-payments"), arguments: ["--simulate"])
let simulatorPath = requireExecutable(executableDirectory() + "/twilio-simulator")
let peer = textOption("--python").flatMap { python in textOption("--peer").map { (executable: python, arguments: [$0]) }
}
let swiftPeer = (executable: requireExecutable(executableDirectory() + "/SwiftSDKPeer"), arguments: [String]())

setenv("AGENT_PAYMENTS_SIMULATOR_PACING_MS", "0", 1)
setenv("AGENT_PAYMENTS_LOG_LEVEL", "error", 1)

let initialize =
    #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#
let discover =
    #"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#
let initialized = #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#

func callSID(_ number: Int) -> String {
    let hex = String(number, radix: 16)
    return "CA" + String(repeating: "0", count: 32 - hex.count) + hex
}

func tool(_ id: Int, _ name: String, _ arguments: String) -> String {
    #"{"jsonrpc":"2.0","id":\#(id),"method":"tools/call","params":{"name":"\#(name)","arguments":\#(arguments)}}"#
}

/// Opens a legacy connection.
func open(_ server: (executable: String, arguments: [String])) throws -> Wire {
    var wire = try Wire(server.executable, server.arguments)
    guard wire.request(id: 1, initialize) != nil else {
        giveUp(
            "\(server.executable) did not answer initialize", because: "it closed its output",
            run: "run it by hand to see its error")
    }
    wire.send(initialized)
    return wire
}

/// A tool result's structured content, or its text parsed as JSON (the peer returns text).
func structured(_ response: JSONValue?) -> JSONValue? {
    guard let result = response?["result"] else { return nil }
    if let structured = result["structuredContent"] { return structured }
    return result["content"]?.arrayValue?.first?["text"]?.stringValue.flatMap { try? JSONValue(parsing: $0) }
}

struct Figures {
    var coldInitialize: [Double] = []
    var coldDiscover: [Double] = []
    var exit: [Double] = []
    var ping: [Double] = []
    var status: [Double] = []
    var payment: [Double] = []
    var idleRSS = 0
    /// Before the live sessions are started, after the pings, status reads and whole payments:
    /// what the sessions add is measured from here, not from `initialize` (the first payment
    /// brings up the callback listener and the HTTP client once, whatever the count).
    var beforeSessionsRSS = 0
    var sessionsRSS = 0
}

func measure(_ server: (executable: String, arguments: [String]), whole: Bool) throws -> Figures {
    var figures = Figures()
    for run in 0..<(runs * 2) {
        let started = nowMilliseconds()
        var wire = try Wire(server.executable, server.arguments)
        let discovering = run % 2 == 1
        guard wire.request(id: 1, discovering ? discover : initialize) != nil else {
            giveUp(
                "\(server.executable) gave no first answer", because: "it closed its output",
                run: "run it by hand to see its error")
        }
        let answered = nowMilliseconds() - started
        if discovering { figures.coldDiscover.append(answered) } else { figures.coldInitialize.append(answered) }
        let closing = nowMilliseconds()
        wire.closeInput()
        _ = wire.finish()
        if !discovering { figures.exit.append(nowMilliseconds() - closing) }
    }

    var wire = try open(server)
    figures.idleRSS = wire.residentBytes()
    var id = 10
    for index in 0..<(pings + warmUp) {
        id += 1
        guard let (_, took) = wire.timedRequest(id: id, #"{"jsonrpc":"2.0","id":\#(id),"method":"ping"}"#) else {
            giveUp("no pong", because: "the server closed its output")
        }
        if index >= warmUp { figures.ping.append(took) }
    }
    id += 1
    let start = wire.request(id: id, tool(id, "startPaymentCapture", #"{"callSid":"\#(callSID(1))"}"#))
    guard let paymentSID = structured(start)?["paymentSid"]?.stringValue else {
        giveUp("no payment session", because: "startPaymentCapture answered \(String(describing: start))")
    }
    for index in 0..<(pings + warmUp) {
        id += 1
        guard
            let (answer, took) = wire.timedRequest(
                id: id, tool(id, "getPaymentStatus", #"{"paymentSid":"\#(paymentSID)"}"#))
        else {
            giveUp("no status", because: "the server closed its output")
        }
        guard answer["result"] != nil, answer["result"]?["isError"] != .bool(true) else {
            giveUp("getPaymentStatus did not answer with the status", because: "it answered \(answer)")
        }
        if index >= warmUp { figures.status.append(took) }
    }

    // A whole payment: start, three captures, complete, following nextStep and waiting while
    // the (instant) simulated caller types, as an agent does.
    for run in 0..<payments {
        let call = callSID(0x1000 + run)
        let started = nowMilliseconds()
        id += 1
        var status = structured(
            wire.request(id: id, tool(id, "startPaymentCapture", #"{"callSid":"\#(call)","postalCode":false}"#)))
        let sid = status?["paymentSid"]?.stringValue ?? ""
        var steps = 0
        while let next = status?["nextStep"]?["tool"]?.stringValue,
            next.hasPrefix("capture") || next == "completePaymentCapture", steps < 20
        {
            steps += 1
            id += 1
            status = structured(wire.request(id: id, tool(id, next, #"{"callSid":"\#(call)","paymentSid":"\#(sid)"}"#)))
            var polls = 0
            while whole, status?["nextStep"]?["waitForCaller"] == true {
                // The simulated caller types at once: a step still waiting after this many long
                // polls (each up to the tool's budget) never ends, and the run says so.
                polls += 1
                guard polls <= 20 else {
                    giveUp(
                        "payment \(run) stopped moving",
                        because: "still waiting for the caller after \(polls - 1) polls: \(String(describing: status))")
                }
                id += 1
                let version = status?["version"]?.intValue ?? 0
                status = structured(
                    wire.request(
                        id: id,
                        tool(
                            id, "getPaymentStatus",
                            #"{"paymentSid":"\#(sid)","waitSeconds":5,"afterVersion":\#(version)}"#)))
            }
        }
        guard status?["phase"] == "completed" else {
            giveUp("payment \(run) did not complete", because: "it ended as \(String(describing: status))")
        }
        figures.payment.append(nowMilliseconds() - started)
    }

    figures.beforeSessionsRSS = wire.residentBytes()
    for index in 0..<sessionCount {
        id += 1
        _ = wire.request(id: id, tool(id, "startPaymentCapture", #"{"callSid":"\#(callSID(0x100000 + index))"}"#))
    }
    figures.sessionsRSS = wire.residentBytes()
    wire.closeInput()
    _ = wire.finish()
    return figures
}

/// Memory of the server alone: live mode against the simulator running as its own process.
func measureServerAlone() throws -> (idle: Int, idleAnonymous: Int, loaded: Int, simulatorGrowth: Int) {
    var simulator = try Wire(simulatorPath, ["--pacing-ms", "0"])
    guard let line = simulator.readLine(), let info = try? JSONValue(parsing: line) else {
        giveUp(
            "twilio-simulator did not start", because: "it printed no JSON line with its address and credentials",
            run: "run \(simulatorPath) by hand")
    }
    func field(_ name: String) -> String {
        guard let value = info[name]?.stringValue else {
            giveUp("twilio-simulator's start line has no \(name)", because: String(decoding: line, as: UTF8.self))
        }
        return value
    }
    let port = freePort()
    let environment = [
        "TWILIO_ACCOUNT_SID": field("accountSid"), "TWILIO_API_KEY": field("apiKey"),
        "TWILIO_API_SECRET": field("apiSecret"), "TWILIO_AUTH_TOKEN": field("authToken"),
        "TWILIO_API_BASE_URL": field("baseURL"), "CALLBACK_PORT": String(port),
        "CALLBACK_BASE_URL": "http://127.0.0.1:\(port)",
    ]
    for (name, value) in environment { setenv(name, value, 1) }
    defer { for name in environment.keys { unsetenv(name) } }
    var wire = try open((executable: ours.executable, arguments: []))
    var id = 10
    // The first session waits for the callback server to come up.
    id += 1
    _ = wire.request(id: id, tool(id, "startPaymentCapture", #"{"callSid":"\#(callSID(1))"}"#))
    let idle = wire.residentBytes()
    let idleAnonymous = wire.residentBytes("RssAnon")
    let simulatorBefore = simulator.residentBytes()
    for index in 0..<sessionCount {
        id += 1
        _ = wire.request(id: id, tool(id, "startPaymentCapture", #"{"callSid":"\#(callSID(0x200000 + index))"}"#))
    }
    let loaded = wire.residentBytes()
    let simulatorGrowth = simulator.residentBytes() - simulatorBefore
    wire.closeInput()
    _ = wire.finish()
    simulator.closeInput()
    _ = simulator.finish()
    return (idle, idleAnonymous, loaded, simulatorGrowth)
}

let ourFigures = must("measuring agent-payments --simulate") { try measure(ours, whole: true) }
if CommandLine.arguments.contains("--ours-only") {
    // For profiling a change: our figures alone, no peers, no live mode.
    for (name, values) in [
        ("spawn → initialize", ourFigures.coldInitialize), ("ping round trip", ourFigures.ping),
        ("getPaymentStatus round trip", ourFigures.status), ("exit after stdin EOF", ourFigures.exit),
    ] {
        print("\(name): median \(format(percentile(values, 0.5))) ms, p90 \(format(percentile(values, 0.9))) ms")
    }
    print("status ÷ ping: \(format(percentile(ourFigures.status, 0.5) / percentile(ourFigures.ping, 0.5)))×")
    print(
        "RSS after initialize \(format(Double(ourFigures.idleRSS) / 1_048_576)) MB, added by \(sessionCount) sessions \(format(Double(ourFigures.sessionsRSS - ourFigures.beforeSessionsRSS) / 1_048_576)) MB"
    )
    exit(0)
}
let alone = must("measuring agent-payments against twilio-simulator") { try measureServerAlone() }
let swiftPeerFigures = must("measuring the Swift SDK peer") { try measure(swiftPeer, whole: false) }
let peerFigures = peer.map { server in
    must("measuring the Python peer", run: "run scripts/setup-test-env") { try measure(server, whole: false) }
}

func ratio(_ ours: Double, _ theirs: Double?) -> String {
    guard let theirs, theirs.isFinite, ours > 0 else { return "" }
    let value = theirs / ours
    return value >= 10 ? "\(Int(value.rounded()))× faster" : "\(format(value))×"
}

func row(
    _ name: String, _ ours: [Double], _ swift: [Double], _ theirs: [Double]?, tail: Double = 0.9, target: String
) {
    produced(name, ours)
    produced("Swift SDK peer: " + name, swift)
    if let theirs { produced("Python peer: " + name, theirs) }
    let median = percentile(ours, 0.5)
    let swiftMedian = percentile(swift, 0.5)
    let peerMedian = theirs.map { percentile($0, 0.5) }
    print(
        "| \(name) | \(format(median)) | \(format(percentile(ours, tail))) | \(format(swiftMedian)) | \(ratio(median, swiftMedian)) | \(peerMedian.map(format) ?? "n/a") | \(ratio(median, peerMedian)) | \(target) |"
    )
}

func megabytes(_ bytes: Int) -> String { format(Double(bytes) / 1_048_576) }

print(
    "agent-payments --simulate vs the MCP Swift SDK peer and the Python SDK peer (both with Twilio stubbed), one run; milliseconds unless stated"
)
print(
    "| measure | ours median | ours p90 (p99 for round trips) | Swift SDK median | Swift ÷ ours | Python SDK median | Python ÷ ours | target |"
)
print("|---|---|---|---|---|---|---|---|")
let swiftFigures = swiftPeerFigures
row(
    "spawn → initialize result (\(runs) runs)", ourFigures.coldInitialize, swiftFigures.coldInitialize,
    peerFigures?.coldInitialize, target: "≤ 8, ahead of the Swift SDK")
row(
    "spawn → server/discover result (\(runs) runs; the peers answer it with an error)", ourFigures.coldDiscover,
    swiftFigures.coldDiscover, peerFigures?.coldDiscover, target: "≤ 8")
row("ping round trip (\(pings))", ourFigures.ping, swiftFigures.ping, peerFigures?.ping, tail: 0.99, target: "≤ 0.05")
row(
    "getPaymentStatus round trip (\(pings))", ourFigures.status, swiftFigures.status, peerFigures?.status, tail: 0.99,
    target: "≤ 1.5× ping")
row(
    "whole payment: start, 3 captures, complete (\(payments); peers stubbed)", ourFigures.payment,
    swiftFigures.payment, peerFigures?.payment, target: "≤ 50")
row("exit after stdin EOF (\(runs) runs)", ourFigures.exit, swiftFigures.exit, peerFigures?.exit, target: "≤ 5")
func memory(_ figures: Figures?, added: Bool) -> String {
    figures.map { megabytes(added ? $0.sessionsRSS - $0.beforeSessionsRSS : $0.idleRSS) } ?? "n/a"
}
print(
    "| RSS after initialize (MB) | \(memory(ourFigures, added: false)) | | \(memory(swiftFigures, added: false)) | | \(memory(peerFigures, added: false)) | | ≤ 30 |"
)
print(
    "| RSS added by \(sessionCount) live sessions (MB) | \(memory(ourFigures, added: true)) | | \(memory(swiftFigures, added: true)) | | \(memory(peerFigures, added: true)) | | ≤ 60 with the simulator |"
)
print(
    "| live mode, simulator in its own process: RSS with 1 session (MB) | \(megabytes(alone.idle)) | | | | | | ≤ 30 |")
print(
    "| live mode: of that, anonymous memory (the rest is code and libraries mapped from files) (MB) | \(megabytes(alone.idleAnonymous)) | | | | | | |"
)
print(
    "| live mode: RSS added by \(sessionCount) live sessions, server alone (MB) | \(megabytes(alone.loaded - alone.idle)) | | | | | | ≤ 40 |"
)
print("| live mode: the simulator process grew by (MB) | \(megabytes(alone.simulatorGrowth)) | | | | | | |")
for (name, bytes) in [
    ("RSS after initialize", ourFigures.idleRSS), ("RSS with sessions", ourFigures.sessionsRSS),
    ("live mode RSS", alone.idle), ("live mode RSS with sessions", alone.loaded),
] {
    produced(name, bytes > 0 ? Double(bytes) : .nan)
}
checkFigures()
