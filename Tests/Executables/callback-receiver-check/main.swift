// Runs a CallbackReceiver on 127.0.0.1 (a free port) for the interop tests.
//
// Usage: callback-receiver-check <public-base-url> <secret>...   (Auth Token in CALLBACK_CHECK_TOKEN)
// Prints {"port": N, "urls": [...]} once listening, then {"secret": ..., "fields": [...]} per accepted
// callback, one JSON object per line. Exits when stdin closes.
import CallbackHTTP
import Foundation
import Hummingbird
import Logging
import TwilioPayments

struct PrintingSink: CallbackSink {
    /// The secrets given on the command line; any other gets 404.
    let secrets: Set<String>

    func knows(secret: String) async -> Bool { secrets.contains(secret) }

    func deliver(secret: String, callback: PaymentStatusCallback) async -> Bool {
        guard secrets.contains(secret) else { return false }
        let line: [String: Any] = [
            "secret": secret, "sid": callback.paymentSID?.rawValue ?? "", "unknown": callback.unknownFields,
        ]
        if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
        return true
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2, let token = ProcessInfo.processInfo.environment["CALLBACK_CHECK_TOKEN"] else {
    FileHandle.standardError.write(
        Data("usage: CALLBACK_CHECK_TOKEN=... callback-receiver-check <public-base-url> <secret>...\n".utf8))
    exit(64)
}
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "callback-receiver-check")
logger.logLevel = .warning
let receiver = CallbackReceiver(
    configuration: CallbackReceiverConfiguration(authToken: Secret(token)),
    sink: PrintingSink(secrets: Set(arguments.dropFirst())), logger: logger)
receiver.setPublicBaseURL(arguments[0])
let urls = try arguments.dropFirst().map { try receiver.callbackURL(secret: $0) }
// The receiver is routes; this host's application serves them (as the server's does).
let router = Router()
router.addRoutes(receiver.routes())
let app = Application(
    router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { channel in
        let ready =
            (try? JSONSerialization.data(
                withJSONObject: ["port": channel.localAddress?.port ?? 0, "urls": urls], options: [.sortedKeys]))
            ?? Data()
        FileHandle.standardOutput.write(ready + Data("\n".utf8))
    }, logger: logger)
let server = Task { try await app.runService(gracefulShutdownSignals: []) }
_ = await Task.detached { while readLine() != nil {} }.value
// Exit, not cancel: cancelling a server with an accepted connection still queued traps in NIO
// (apple/swift-nio#3481), and there is nothing left to finish.
_ = server
exit(0)
