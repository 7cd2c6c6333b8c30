import Hummingbird
import ListenerGuard
import MCPHTTP
import Metrics
import NIOCore
import PaymentsSettings
import Prometheus

/// The metrics backend this executable chooses for every library's swift-metrics: Prometheus,
/// exposed at `GET /metrics` on the one listener (Docs/operations.md).
enum PrometheusMetrics {
    /// Bootstraps the process's metrics system on a new registry (once, before anything counts).
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// `GET /metrics`: open on a loopback listener; on any other address it asks what `/mcp` asks
    /// (`transport`'s tokens or OAuth), and without `--http` there is nothing to ask, so it is refused.
    static func route(
        _ registry: PrometheusCollectorRegistry, on router: Router<ListenerRequestContext>, host: String,
        transport: MCPHTTPTransport?
    ) {
        let exposed = !HTTPSettings.isLoopback(host)
        router.get("metrics") { request, context -> Response in
            if exposed {
                guard let transport else {
                    return Response(
                        status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(
                            byteBuffer: ByteBuffer(
                                string:
                                    "/metrics is served without a token only on a loopback listener; use --http's tokens\n"
                            )))
                }
                if case .refused(let response) = await transport.authenticate(request, channel: context.channel) {
                    return response
                }
            }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }
}
