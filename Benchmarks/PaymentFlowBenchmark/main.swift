// Reducer steps per second (one thread); the storage format's writer and reader (what a replica
// on PostgreSQL pays per change) beside Foundation's JSONEncoder/JSONDecoder on the same session;
// memory per live session with 10,000 sessions in
// the in-memory store and its published snapshot, and per session in PaymentsMCP's
// rendered-status cache. Usage: PaymentFlowBenchmark [--sessions N]
import BenchmarkSupport
import Foundation
import HeapStats
import MCPClient
import MCPCore
@_spi(StorageReference) import PaymentFlow
import PaymentsMCP
import TwilioPayments

let sessionCount = option("--sessions", 10_000, smoke: 200)

func now() -> Double { nowMilliseconds() / 1000 }

func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes * 1024
}

func sid<T: TwilioSID>(_ type: T.Type, _ number: Int) -> T {
    let hex = String(number, radix: 16)
    return T(validated: T.prefix + String(repeating: "0", count: 32 - hex.count) + hex)
}

let date = Date(timeIntervalSince1970: 1_800_000_000)
let field = ["PaymentCardNumber", "SecurityCode", "ExpirationDate", "PaymentCardPostalCode"]
let items: [PaymentItem] = [.cardNumber, .securityCode, .expirationDate, .postalCode]

/// One whole card payment as events: create, four captures with partial callbacks, complete.
func paymentEvents(_ payment: PaymentSID, call: CallSID) -> [PaymentEvent] {
    var events: [PaymentEvent] = [.sessionCreated(payment, at: date)]
    for (index, item) in items.enumerated() {
        events.append(.captureRequested(item, at: date))
        events.append(.captureAccepted(item, at: date))
        for digits in 1...3 {
            events.append(
                .callbackReceived(
                    PaymentStatusCallback(fields: [
                        ("Sid", payment.rawValue), ("Capture", item.rawValue), ("PartialResult", "true"),
                        (field[index], String(repeating: "x", count: digits)),
                    ]), at: date))
        }
        events.append(
            .callbackReceived(
                PaymentStatusCallback(fields: [
                    ("Sid", payment.rawValue), ("Capture", item.rawValue), ("PartialResult", "false"),
                    (field[index], "xxxxxxxxxxxx1111"),
                    ("Required", items.dropFirst(index + 1).map(\.rawValue).joined(separator: ",")),
                ]), at: date))
    }
    events.append(.completeRequested(at: date))
    events.append(.completeAccepted(at: date))
    // A result names its payment and call, as Twilio's does (the reducer ignores one that does not).
    events.append(
        .callbackReceived(
            PaymentStatusCallback(fields: [
                ("Sid", payment.rawValue), ("CallSid", call.rawValue), ("Result", "success"),
                ("PaymentToken", "tok"),
            ]), at: date))
    return events
}

let call = sid(CallSID.self, 1)
let events = paymentEvents(sid(PaymentSID.self, 1), call: call)
let fresh = PaymentSession(
    callSID: call, configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "9.99")), at: date)

var rates: [Double] = []
for _ in 0..<5 {
    var steps = 0
    let start = now()
    while now() - start < (isSmoke ? 0.05 : 0.6) {
        var session = fresh
        for event in events { session = PaymentReducer.reduce(session, event).session }
        precondition(session.phase.isFinished)
        steps += events.count
    }
    rates.append(Double(steps) / (now() - start))
}
rates.sort()

// The storage format: a session halfway through a payment (the card number captured, the
// security code being typed), as a compare-and-set writes it and another replica reads it.
var halfway = fresh
for event in events.prefix(12) { halfway = PaymentReducer.reduce(halfway, event).session }
let storedBytes = halfway.storageJSON()
precondition(storedBytes == halfway.foundationStorageJSON(), "the writer writes what JSONEncoder writes")
precondition(
    (try? PaymentSession(storageJSON: storedBytes)) == (try? PaymentSession(foundationStorageJSON: storedBytes)))
/// Microseconds per call of `body`, the median of five timed runs.
func microseconds(_ body: () -> Void) -> Double {
    var runs: [Double] = []
    for _ in 0..<5 {
        var count = 0
        let start = now()
        while now() - start < (isSmoke ? 0.02 : 0.3) {
            for _ in 0..<100 { body() }
            count += 100
        }
        runs.append((now() - start) * 1e6 / Double(count))
    }
    return runs.sorted()[2]
}
let storedText = String(decoding: storedBytes, as: UTF8.self)
let codec = [
    microseconds { precondition(!halfway.storageJSON().isEmpty) },
    microseconds { precondition(!halfway.foundationStorageJSON().isEmpty) },
    microseconds { precondition((try? PaymentSession(storageJSON: storedText)) != nil) },
    microseconds { precondition((try? PaymentSession(foundationStorageJSON: storedBytes)) != nil) },
]

// Memory: idle sessions (created, nothing captured) in the in-memory store.
let store = InMemoryPaymentStore()
var created: [PaymentSession] = []
created.reserveCapacity(sessionCount)
for index in 0..<sessionCount {
    created.append(
        PaymentReducer.reduce(
            PaymentSession(
                callSID: sid(CallSID.self, index),
                configuration: PaymentConfiguration(options: PaymentSessionOptions(chargeAmount: "9.99")), at: date),
            .sessionCreated(sid(PaymentSID.self, index), at: date)
        ).session)
}
let before = residentBytes()
for session in created {
    let stored = await store.compareAndSet(session, expectedVersion: nil)
    precondition(stored)
}
let after = residentBytes()
let storedCount = await store.count
precondition(storedCount == sessionCount)
// The coordinator's published snapshot keeps the newest version of each session by payment SID
// (the values the change feed carries), each behind a reference (PublishedSessions): the same
// layout, measured beside the store.
final class Boxed {
    let session: PaymentSession
    init(_ session: PaymentSession) { self.session = session }
}
var snapshot: [PaymentSID: Boxed] = [:]
for session in created { snapshot[session.paymentSID!] = Boxed(session) }
let afterSnapshot = residentBytes()
precondition(snapshot.count == sessionCount)

print("PaymentFlow (one thread; \(events.count) events per whole payment)")
print("| measure | figure | target |")
print("|---|---|---|")
print("| reducer steps per second (median of 5) | \(Int(rates[2])) | ≥ 1000000 |")
print("| reducer steps per second (min of 5) | \(Int(rates[0])) | |")
print(
    "| storage format, write one session (\(storedBytes.count) bytes), µs (median of 5) | \(String(format: "%.1f", codec[0])) | JSONEncoder \(String(format: "%.1f", codec[1])) |"
)
print(
    "| storage format, read it back, µs (median of 5) | \(String(format: "%.1f", codec[2])) | JSONDecoder \(String(format: "%.1f", codec[3])) |"
)
print("| memory per idle session, \(sessionCount) in the store | \((after - before) / sessionCount) bytes | ≤ 2048 |")
print(
    "| … and in the published snapshot | \((afterSnapshot - after) / sessionCount) bytes (an inline PaymentSession is \(MemoryLayout<PaymentSession>.stride)) | |"
)

// The rendered-status cache (PaymentsMCP): each session's status is built, redacted, checked and
// serialized once per version and kept (up to 256 sessions). Measured as heap bytes in use
// (glibc's mallinfo2, every arena, mmapped blocks included) added by the first status read of
// `cachedCount` sessions through the real tools over an in-process MCP channel; the sessions,
// the tools and one status read exist before.
/// Twilio as far as starting a payment goes: every start is accepted with a payment SID of its own.
struct StartsOnly: TwilioPaymentsAPI {
    func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String, statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        PaymentResource(
            accountSID: nil, callSID: callSID, sid: PaymentSID(validated: "PK" + callSID.rawValue.dropFirst(2)),
            dateCreated: date, dateUpdated: date, uri: nil)
    }
    func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource { throw .invalidRequest(["not in this benchmark"]) }
    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        CallResource(sid: callSID, rawStatus: "in-progress")
    }
}

func heapInUse() -> Int { Int(heap_stats_in_use()) }

let cachedCount = isSmoke ? 20 : 200
let coordinator = PaymentCoordinator(
    api: StartsOnly(), callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.invalid/cb"))
let server = PaymentsMCP.makeServer(version: "benchmark")
let tools = PaymentsMCP(server: server, coordinator: coordinator)
tools.install()
Task { try await tools.run() }
while !tools.takesCommands { await Task.yield() }
let client = MCPClient(channel: InProcessChannel(server: server))
var payments: [String] = []
for index in 0...cachedCount {
    let session = try await coordinator.start(
        callSID: sid(CallSID.self, 0x10_0000 + index), options: PaymentSessionOptions(chargeAmount: "9.99"))
    payments.append(session.paymentSID!.rawValue)
}
/// Reads `payment`'s status through the tool; the size of the result.
func readStatus(_ payment: String) async throws -> Int {
    let result = try await client.callTool("getPaymentStatus", arguments: ["paymentSid": .string(payment)])
    precondition(result["isError"] != .bool(true), "getPaymentStatus refused: \(result)")
    return result.serialized().utf8.count
}
// One-time costs first: metadata, the validator, the cache itself.
let answerBytes = try await readStatus(payments.removeLast())
let heapBefore = heapInUse()
for payment in payments { _ = try await readStatus(payment) }
let heapAfter = heapInUse()
let cacheBytes = (heapAfter - heapBefore) / cachedCount
print(
    "| rendered-status cache, per session (heap in use added by the first status read of \(cachedCount) sessions) | \(cacheBytes) bytes (one tool result is \(answerBytes) bytes of JSON) | |"
)

produced("reducer steps per second", rates)
produced("storage format write and read", codec)
produced("memory per idle session", after > 0 && before > 0 ? Double(after - before) : .nan)
produced("snapshot memory per session", afterSnapshot > 0 && after > 0 ? Double(afterSnapshot - after) : .nan)
produced("rendered-status cache per session", heapAfter > heapBefore ? Double(cacheBytes) : .nan)
checkFigures()
