// TwilioSimulator as its own process, for pointing agent-payments (TWILIO_API_BASE_URL) or any
// other client at a stand-in Twilio.
//
// Usage: twilio-simulator [--port N] [--pacing-ms N]
// Prints one JSON line with the base URL and the made-up credentials (account SID, API key,
// secret, Auth Token that signs callbacks), then serves until stdin closes.
import Foundation
import Hummingbird
import Logging
import TwilioPayments
import TwilioSimulator
import Synchronization

func option(_ name: String) -> Int? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return nil }
    return Int(CommandLine.arguments[index + 1])
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "twilio-simulator")
logger.logLevel = .warning
var configuration = TwilioSimulator.Configuration.offline(digitPacing: .milliseconds(option("--pacing-ms") ?? 150))
configuration.callbackHistoryLimit = 0
let simulator = TwilioSimulator(configuration: configuration, logger: logger)
let port = Atomic<Int>(0)
let app = simulator.makeApplication(port: option("--port") ?? 0) { bound in port.store(bound, ordering: .relaxed) }
let server = Task { try await app.runService(gracefulShutdownSignals: []) }
while port.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
let credentials = configuration.credentials
let ready: [String: String] = [
    "baseURL": "http://127.0.0.1:\(port.load(ordering: .relaxed))", "accountSid": credentials.accountSID.rawValue,
    "apiKey": credentials.apiKeySID.rawValue, "apiSecret": credentials.apiSecret.revealed, "authToken": configuration.authToken.revealed,
]
FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: ready, options: [.sortedKeys]) + Data("\n".utf8))
_ = await Task.detached { while readLine() != nil {} }.value
server.cancel()
