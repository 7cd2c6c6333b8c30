public import Hummingbird
import NIOCore
import PaymentFlow
import Synchronization

extension PaymentsSystem {
    /// Whether the system can take a payment now: it started (every part up, the public URL
    /// known), Twilio's credentials are loaded (or the simulator runs), and the store answers
    /// within `storeTimeout`. A store's answer is reused for `reusingFor` (a second), so a probe
    /// that comes often costs the store one query a second at most.
    public func readiness(
        storeTimeout: Duration = .seconds(1), reusingFor reuse: Duration = .seconds(1)
    ) async -> PaymentsReadiness {
        var checks: [PaymentsReadiness.Check] = []
        switch await startup.done.wait(upTo: .zero) {
        case .success: checks.append(.init(name: "started", failure: nil))
        case .failure(.failed): checks.append(.init(name: "started", failure: "the payment system could not start"))
        case .failure: checks.append(.init(name: "started", failure: "the payment system is still starting"))
        }
        checks.append(.init(name: "publicURL", failure: receiver.publicBase.value == nil ? "not known yet" : nil))
        checks.append(.init(name: "twilio", failure: nil)) // credentials are loaded before the system exists
        checks.append(
            .init(
                name: "store",
                failure: await storeProbe.check(configuration.store, timeout: storeTimeout, reusingFor: reuse)))
        return PaymentsReadiness(checks: checks)
    }

    /// `GET /livez` (the process serves: 200 `ok`) and `GET /readyz` (``readiness(storeTimeout:reusingFor:)``:
    /// 200, or 503 with the failing checks, as JSON), for the host's router. Both are cheap, need
    /// no token and reveal nothing else; Kubernetes' probes use them (Docs/deployment.md).
    public func healthRoutes<Context: RequestContext>(
        context: Context.Type = BasicRequestContext.self
    ) -> RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("livez") { _, _ in "ok\n" }
        routes.get("readyz") { [self] _, _ -> Response in
            let readiness = await readiness()
            return Response(
                status: readiness.isReady ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: readiness.json)))
        }
        return routes
    }
}

/// The store's last answer to a readiness probe, reused for a second.
final class StoreProbe: Sendable {
    private enum Probe: Sendable {
        case answered
        case failed(String)
    }

    private let last = Mutex<(at: ContinuousClock.Instant, failure: String?)?>(nil)

    /// `nil` when `store` answers within `timeout`, else why not (in words that name nothing).
    func check(_ store: any PaymentStore, timeout: Duration, reusingFor reuse: Duration) async -> String? {
        let now = ContinuousClock.now
        if let last = last.withLock({ $0 }), now - last.at < reuse { return last.failure }
        // An enum, not a nested optional: that crashed Swift 6.3.1's optimizer (Readiness.swift).
        let failure = await withTaskGroup(of: Probe.self) { group -> String? in
            group.addTask {
                do {
                    _ = try await store.session(id: "readiness-probe")
                    return .answered
                } catch {
                    return .failed("the store does not answer")
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .failed("the store did not answer in time")
            }
            let first = await group.next()
            group.cancelAll()
            switch first {
            case .answered?: return nil
            case .failed(let reason)?: return reason
            case nil: return "the store did not answer in time"
            }
        }
        last.withLock { $0 = (ContinuousClock.now, failure) }
        return failure
    }
}
