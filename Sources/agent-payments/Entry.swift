import Dispatch
import Foundation
import MCPHTTP
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
        if Settings.servesHTTP(arguments: arguments, environment: ProcessInfo.processInfo.environment) {
            _ = EventLoopExecutor.install()
        }
        Task {
            await AgentPayments.main()
            exit(0)
        }
        dispatchMain()
    }
}
