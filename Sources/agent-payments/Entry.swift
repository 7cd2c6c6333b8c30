import Dispatch
import Foundation
import MCPHTTP
import PaymentsSettings

/// The process's entry point. It is synchronous so that, for `--http`, NIO's event loops can
/// become Swift's global executor before any task exists (NIO allows that only from the main
/// thread, first): Hummingbird's handlers, the engine and the flow then run on the event loop
/// that reads and writes their connection, instead of hopping to Swift's own pool and back — two
/// thread wake-ups each way per request, which were most of an HTTP round trip
/// (Docs/benchmarks.md). Over stdio, started the way MCP clients start it, serving begins here on
/// the main thread before the first task exists (`Serve.Beginning`), so that the handshake is
/// answered while the concurrency runtime and the rest of the server start.
@main
enum Entry {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let environment = processEnvironment()
        if Settings.servesHTTP(arguments: arguments, environment: environment) {
            _ = EventLoopExecutor.install()
        } else if let configuration = AgentPayments.direct(arguments: arguments, environment: environment) {
            // The way MCP clients start the server: serving stdio begins here, on the main thread,
            // so that the handshake is answered while the concurrency runtime and the rest start.
            let beginning = Serve.Beginning(configuration)
            Task {
                await AgentPayments.main(serving: (configuration, beginning))
                exit(0)
            }
            dispatchMain()
        }
        Task {
            await AgentPayments.main()
            exit(0)
        }
        dispatchMain()
    }
}

/// The process's environment, as every path of the executable reads it (so that the direct
/// stdio start and the command line agree), from `environ` rather than through `ProcessInfo`: its
/// getter, compiled without direct metadata accessors (Package.swift, `directMetadata`), made its
/// dictionary's metadata from a mangled name and so the start's first conformance scan, 0.3 ms
/// of a 4.4 ms cold start before the first answer (perf record of 60 spawns). As `getenv` does, the
/// first of two entries with one name wins; an entry without `=` is skipped.
func processEnvironment() -> [String: String] {
    var variables: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.utf8.firstIndex(of: UInt8(ascii: "=")) {
            let name = String(text[..<equals])
            if variables[name] == nil { variables[name] = String(text[text.utf8.index(after: equals)...]) }
        }
        entry += 1
    }
    return variables
}
