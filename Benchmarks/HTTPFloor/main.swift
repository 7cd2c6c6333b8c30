import Dispatch
import Foundation
import Hummingbird
import ListenerGuard
import Logging
import MCPHTTP
import NIOCore

/// The HTTP stack's own floor for an MCP request (issue 30, item 5): the server's listener
/// (Hummingbird on a guarded HTTP/1 channel, NIO's event loops as the executor, a router with
/// `ListenerRequestContext`) with routes that do only what any POST route must: collect the body
/// and answer a fixed JSON body of the size an MCP answer has. `http_bench.py` sends them the same
/// requests it sends the MCP endpoint, beside `GET /healthz`, so that the stack's cost of a POST
/// with a body against a GET without one is measured apart from the server's own work.
///
/// Prints `PORT <n>` once it listens on loopback; ends when its standard input ends.
@main
enum HTTPFloor {
    static func main() {
        // As the server does for --http (Sources/agent-payments/Entry.swift): before any task.
        _ = EventLoopExecutor.install()
        Task {
            await serve()
            exit(0)
        }
        dispatchMain()
    }

    /// The answers' bodies: a `ping` result's size and a `getPaymentStatus` result's (2.6 KB).
    static let answers: [String: ByteBuffer] = [
        "ping": ByteBuffer(string: #"{"id":"1-1","jsonrpc":"2.0","result":{}}"# + "\n"),
        "status": ByteBuffer(
            string: #"{"id":"1-1","jsonrpc":"2.0","result":{"content":[{"text":""#
                + String(repeating: "x", count: 2_520) + #"","type":"text"}]}}"# + "\n"),
    ]

    static func serve() async {
        var logger = Logger(label: "http-floor")
        logger.logLevel = .warning
        let router = Router(context: ListenerRequestContext.self)
        router.get("healthz") { _, _ in "ok\n" }
        router.post("floor/:answer") { request, context -> Response in
            guard let answer = context.parameters.get("answer").flatMap({ answers[$0] }) else {
                return Response(status: .notFound)
            }
            _ = try await request.body.collect(upTo: 1 << 20)
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: answer))
        }
        let app = Application(
            router: router, server: .guardedHTTP1(limits: ListenerLimits(), logger: logger),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("PORT \(channel.localAddress?.port ?? 0)\n".utf8))
            }, logger: logger)
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        // Until standard input ends (the harness closes it, or dies).
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                while readLine() != nil {}
                done.resume()
            }
        }
        server.cancel()
    }
}
