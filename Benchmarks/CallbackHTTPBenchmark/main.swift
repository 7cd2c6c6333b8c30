// Signed payment callbacks per second through the receiver's real socket, with p50/p99
// latency, from a bounded loopback load generator (wrk: 1 thread, 16 connections, fixed
// duration). The receiver validates every signature and delivers to a counting sink.
// Usage: CallbackHTTPBenchmark [--seconds S] [--connections N] [--smoke]
import BenchmarkSupport
import CallbackHTTP
import CallbackServing
import Foundation
import Logging
import Synchronization
import TwilioPayments

final class CountingSink: CallbackSink {
    let count = Atomic<Int>(0)
    func knows(secret: String) async -> Bool { true }
    func deliver(secret: String, callback: PaymentStatusCallback) async -> Bool {
        count.add(1, ordering: .relaxed)
        return true
    }
}

let seconds = option("--seconds", 5, smoke: 1)
let connections = option("--connections", 16)

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "callback-benchmark")
logger.logLevel = .error
let sink = CountingSink()
let token = Secret("0123456789abcdef0123456789abcdef")
let receiver = CallbackReceiver(
    configuration: CallbackReceiverConfiguration(authToken: token), sink: sink, logger: logger)
// The receiver is routes: served as the server serves them, on a guarded listener.
let server = await serveCallbacks(receiver, logger: logger)
let url = must("building the callback URL") { try receiver.callbackURL(secret: "8f14e45fceea167a5a36dedd4bea2543") }

let fields = typicalPaymentCallback
let signature = WebhookSignature(authToken: token).sign(url: url, parameters: fields)
let body = FormEncoding.encode(fields)
let script = FileManager.default.temporaryDirectory.appendingPathComponent("callback-bench-\(getpid()).lua")
let wrkPath = requireExecutableOrExplain("/usr/bin/wrk", install: "apt-get install wrk (Benchmarks/run installs it)")
must("writing the wrk script") {
    try """
    wrk.method = "POST"
    wrk.body = "\(body)"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
    wrk.headers["X-Twilio-Signature"] = "\(signature)"
    done = function(summary, latency, requests)
      io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
    end
    """.write(to: script, atomically: true, encoding: .utf8)
}
defer { try? FileManager.default.removeItem(at: script) }

let wrk = Process()
wrk.executableURL = URL(fileURLWithPath: wrkPath)
wrk.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "-s", script.path, url]
let output = Pipe()
wrk.standardOutput = output
must("starting wrk") { try wrk.run() }
let data = output.fileHandleForReading.readDataToEndOfFile()
wrk.waitUntilExit()
server.cancel()

let text = String(decoding: data, as: UTF8.self)
guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
    giveUp(
        "wrk produced no result", because: text.isEmpty ? "no output" : text.replacingOccurrences(of: "\n", with: " "),
        run: "run wrk by hand against a receiver")
}
let numbers = line.split(separator: " ").dropFirst().compactMap { Int($0) }
guard numbers.count == 5 else { giveUp("wrk's result line is malformed", because: String(line)) }
let (requests, durationMicros, p50, p99, errors) = (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4])
let delivered = sink.count.load(ordering: .relaxed)
print("CallbackHTTP receiver (signed 15-field callbacks, wrk -t1 -c\(connections) for \(seconds) s on loopback)")
print("| measure | figure | target |")
print("|---|---|---|")
print("| callbacks per second | \(Int(Double(requests) / (Double(durationMicros) / 1e6))) | ≥ 20000 |")
print("| latency p50 | \(String(format: "%.3f", Double(p50) / 1000)) ms | |")
print("| latency p99 | \(String(format: "%.3f", Double(p99) / 1000)) ms | ≤ 5 ms |")
print("| errors / delivered to the sink | \(errors) / \(delivered) of \(requests) | 0 / all |")
produced("callbacks per second", requests > 0 && durationMicros > 0 ? Double(requests) : .nan)
produced("latency p50 and p99", p50 > 0 && p99 > 0 ? Double(p99) : .nan)
checkFigures()
