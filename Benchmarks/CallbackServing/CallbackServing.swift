import BenchmarkSupport
public import CallbackHTTP
import Hummingbird
import ListenerGuard
public import Logging
import Synchronization

/// Serves `receiver`'s routes on a guarded loopback listener, as the server serves them, with the
/// receiver's public URL set to the bound port; returns once it listens (giving up after 10 s),
/// with the task that runs it (cancel it to stop).
public func serveCallbacks(_ receiver: CallbackReceiver, logger: Logger) async -> Task<Void, any Error> {
    let router = Router()
    router.addRoutes(receiver.routes())
    let bound = Mutex<Int?>(nil)
    let app = Application(
        router: router, server: .guardedHTTP1(limits: ListenerLimits(), logger: logger),
        configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            receiver.setPublicBaseURL("http://127.0.0.1:\(port)")
            bound.withLock { $0 = port }
        }, logger: logger)
    let server = Task { try await app.runService(gracefulShutdownSignals: []) }
    let started = ContinuousClock.now
    while bound.withLock({ $0 }) == nil {
        if ContinuousClock.now - started > .seconds(10) {
            giveUp("the callback receiver did not start", because: "no port bound within 10 s")
        }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return server
}
