import Hummingbird
import Logging
import ListenerGuard
import MCPHTTP
import Metrics
import NIOCore
import PaymentsSettings
import Prometheus
import ServiceLifecycle

/// The metrics backend this executable chooses for every library's swift-metrics: Prometheus,
/// exposed at `GET /metrics` on the one listener or on one of its own (Docs/operations.md).
enum PrometheusMetrics {
    /// Bootstraps the process's metrics system on a new registry (once, before anything counts);
    /// with metrics `off`, none: the libraries' counters then cost nothing.
    static func bootstrap(_ destination: ServerConfiguration.MetricsDestination) -> PrometheusCollectorRegistry? {
        guard destination != .off else { return nil }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// `GET /metrics`: open on a loopback listener; on any other address it asks what `/mcp` asks
    /// (`transport`'s tokens or OAuth), and without `--http` there is nothing to ask, so it is refused.
    static func route(
        _ registry: PrometheusCollectorRegistry?, on router: Router<ListenerRequestContext>, host: String,
        transport: MCPHTTPTransport?
    ) {
        guard let registry else { return }
        let exposed = !HTTPSettings.isLoopback(host)
        router.get("metrics") { request, context -> Response in
            if let refusal = await MCPHTTPTransport.operatorRefusal(
                request, channel: context.channel, exposed: exposed, transport: transport, path: "/metrics")
            {
                return refusal
            }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }

    /// `/metrics` on a listener of its own (`AGENT_PAYMENTS_METRICS=[HOST:]PORT`), bounded like
    /// the main one; its address is said to the operator once it listens. A port it cannot
    /// listen on ends the group.
    static func listener(
        _ registry: PrometheusCollectorRegistry?, _ configuration: ServerConfiguration, transport: MCPHTTPTransport?,
        logger: Logger
    ) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        guard case .separate(let host, let port) = configuration.metrics else { return [] }
        let router = Router(context: ListenerRequestContext.self)
        route(registry, on: router, host: host, transport: transport)
        let application = Application(
            router: router, server: .guardedHTTP1(limits: configuration.listener.limits, logger: logger),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "agent-payments"),
            onServerRunning: { channel in
                let url = HTTPSettings.url(host: host, port: channel.localAddress?.port ?? port)
                Serve.toOperator(configuration.operatorLine("metrics endpoint \(url)/metrics"))
            }, logger: logger)
        return [.init(service: application, serviceName: "metrics listener")]
    }
}
