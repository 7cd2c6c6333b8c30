import Dispatch
import Foundation
import NIOCore
import NIOPosix
import PaymentsSettings

/// The process's entry point. It is synchronous so that, for `--http`, NIO's event loops can
/// become Swift's global executor before any task exists (NIO allows that only from the main
/// thread, first): Hummingbird's handlers, the engine and the flow then run on the event loop
/// that reads and writes their connection, instead of hopping to Swift's own pool and back — two
/// thread wake-ups each way per request, which were most of an HTTP round trip
/// (Docs/benchmarks.md). Over stdio nothing changes but the way the async entry is started.
@main
enum Entry {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains(where: { $0 == "--http" || $0.hasPrefix("--http=") }) || servesHTTP(arguments) {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        Task {
            await AgentPayments.main()
            exit(0)
        }
        dispatchMain()
    }

    /// Whether the environment or a configuration file sets `AGENT_PAYMENTS_HTTP` (a mistake in
    /// them is reported later, by the command that reads them).
    static func servesHTTP(_ arguments: [String]) -> Bool {
        var file: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--config", index + 1 < arguments.count { file = arguments[index + 1] }
            if argument.hasPrefix("--config=") { file = String(argument.dropFirst("--config=".count)) }
        }
        let environment = ProcessInfo.processInfo.environment
        // Without a file, the environment alone tells (and no reader is built twice at a cold start).
        guard file != nil || environment[Setting.configFile.name] != nil else {
            return !(environment[Setting.http.name]?.trimmingCharacters(in: .whitespaces).isEmpty ?? true)
        }
        let settings = try? Settings(commandLine: file.map { [.configFile: $0] } ?? [:], environment: environment)
        return settings?.isSet(.http) ?? false
    }
}
