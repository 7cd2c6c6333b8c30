// TwilioSimulator as its own process, for pointing agent-payments (TWILIO_API_BASE_URL) or any
// other client at a stand-in Twilio.
//
// Usage: twilio-simulator [--port N] [--pacing-ms N] [--capture-time-partial-result absent|true]
//                         [--final-partial-result false|absent]
//                         [--required-style kebab-comma|pascal-comma|repeated-fields]
//                         [--report-payments] [--leak-into-errors]
//                         [--throttle N|always] [--retry-after S] [--record-calls]
// The three shape options choose how callbacks spell what Twilio's documentation leaves open.
// --report-payments prints one JSON line per payment session created (its SID, call SID and
// StatusCallback URL) after the first line, for test harnesses. --leak-into-errors appends the
// API secret, the Auth Token and a full test card number to every error message, so tests can
// prove a client never repeats them. --throttle answers the first N requests (or every one)
// with Twilio's throttling, HTTP 429 and error 20429, with `Retry-After: S` when given.
// Prints one JSON line with the base URL and the made-up credentials (account SID, API key,
// secret, Auth Token that signs callbacks), then serves until stdin closes. Lines on stdin are
// commands: `hold-creates before|after [N]` holds the next N (1) payment creations, before or
// after their effect, printing {"event": "create-held", "hold": …} as each is held;
// `release-creates` answers them; `fail-recording-updates N|always|off` refuses recording
// updates (HTTP 400, 21220); `report-recordings CALLSID` prints {"event": "recordings",
// "callSid": …, "recordings": [{sid, status, keypressesHeard, updates}]}. With --record-calls,
// every call has an in-progress recording from its start.
import Foundation
import Hummingbird
import Logging
import TwilioPayments
import TwilioSimulator
import ListenerGuard
import Synchronization

func text(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return CommandLine.arguments[index + 1]
}

func option(_ name: String) -> Int? { text(name).flatMap { Int($0) } }

/// The value of `--name` as one of `T`'s cases, or exit 64 naming the choices.
func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ fallback: T) -> T where T.RawValue == String {
    guard let given = text(name) else { return fallback }
    guard let value = T(rawValue: given) else {
        FileHandle.standardError.write(
            Data(
                "twilio-simulator: \(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got \(given)\n"
                    .utf8))
        exit(64)
    }
    return value
}

FileDescriptorLimit.raiseSoftLimitToHard()
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "twilio-simulator")
logger.logLevel = .warning
var configuration = TwilioSimulator.Configuration.offline(digitPacing: .milliseconds(option("--pacing-ms") ?? 150))
configuration.callbackHistoryLimit = 0
let output = Mutex(())
/// One JSON line on standard output, whole.
func emit(_ object: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
    output.withLock { _ in FileHandle.standardOutput.write(data + Data("\n".utf8)) }
}
if CommandLine.arguments.contains("--report-payments") {
    configuration.onPaymentCreated = { payment, call, url in
        emit([
            "event": "payment-created", "paymentSid": payment.rawValue, "callSid": call.rawValue, "statusCallback": url,
        ])
    }
}
configuration.onCreateHeld = { hold in emit(["event": "create-held", "hold": hold.rawValue]) }
configuration.recordsCalls = CommandLine.arguments.contains("--record-calls")
if CommandLine.arguments.contains("--leak-into-errors") {
    configuration.errorMessageSuffix =
        "(api secret \(configuration.credentials.apiSecret.revealed), auth token \(configuration.authToken.revealed), card 4111111111111111)"
}
configuration.callbackShape = TwilioSimulator.CallbackShape(
    captureTimePartialResult: choice("--capture-time-partial-result", .absent),
    finalPartialResult: choice("--final-partial-result", .false),
    requiredStyle: choice("--required-style", .kebabComma))
let simulator = TwilioSimulator(configuration: configuration, logger: logger)
if let throttle = text("--throttle") {
    guard throttle == "always" || Int(throttle).map({ $0 > 0 }) == true else {
        FileHandle.standardError.write(Data("twilio-simulator: --throttle must be a positive count or always\n".utf8))
        exit(64)
    }
    simulator.throttle(TwilioSimulator.Throttle(requests: Int(throttle), retryAfter: option("--retry-after")))
}
let port = Atomic<Int>(0)
let app = simulator.makeApplication(port: option("--port") ?? 0) { bound in port.store(bound, ordering: .relaxed) }
let server = Task { try await app.runService(gracefulShutdownSignals: []) }
while port.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
let credentials = configuration.credentials
let ready: [String: String] = [
    "baseURL": "http://127.0.0.1:\(port.load(ordering: .relaxed))", "accountSid": credentials.accountSID.rawValue,
    "apiKey": credentials.apiKeySID.rawValue, "apiSecret": credentials.apiSecret.revealed,
    "authToken": configuration.authToken.revealed,
]
emit(ready)
_ = await Task.detached {
    while let line = readLine() {
        let words = line.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("hold-creates", 2...3):
            guard let hold = TwilioSimulator.CreateHold(rawValue: words[1]),
                let count = words.count == 3 ? Int(words[2]) : 1, count > 0
            else {
                FileHandle.standardError.write(Data("twilio-simulator: hold-creates before|after [N]\n".utf8))
                continue
            }
            simulator.holdCreates(hold, count: count)
        case ("release-creates", 1): simulator.releaseCreates()
        case ("fail-recording-updates", 2):
            simulator.failRecordingUpdates(words[1] == "always" ? nil : words[1] == "off" ? 0 : Int(words[1]) ?? 0)
        case ("report-recordings", 2):
            guard let call = CallSID(words[1]) else { continue }
            let recordings = simulator.recordings(on: call).map { recording -> [String: Any] in
                [
                    "sid": recording.sid.rawValue, "status": recording.status,
                    "keypressesHeard": recording.keypressesHeard, "updates": recording.updates,
                ]
            }
            emit(["event": "recordings", "callSid": call.rawValue, "recordings": recordings])
        default: FileHandle.standardError.write(Data("twilio-simulator: unknown command \(line)\n".utf8))
        }
    }
}.value
// Exit, not cancel: cancelling a server with an accepted connection still queued traps in NIO
// (apple/swift-nio#3481), and there is nothing left to finish.
_ = server
exit(0)
