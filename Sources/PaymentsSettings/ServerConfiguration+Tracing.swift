public import OTel

extension ServerConfiguration {
    /// The OpenTelemetry variables the tracer is made from, when traces go anywhere: an OTLP
    /// endpoint is named (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
    /// `OTEL_SDK_DISABLED` is not `true` and `OTEL_TRACES_EXPORTER` is not `none`. Every
    /// `OTEL_*` variable but those of metrics and logs (this server's metrics are Prometheus',
    /// its logs its own): `nil` when traces go nowhere.
    /// A protocol other than OTLP/HTTP (`http/protobuf`, `http/json`) is refused here: this
    /// build has no gRPC exporter, and swift-otel would stop the process on it.
    static func tracingEnvironment(_ environment: [String: String]) throws(ConfigurationError) -> [String: String]? {
        let otel = environment.filter {
            $0.key.hasPrefix("OTEL_") && !$0.key.hasPrefix("OTEL_METRICS_") && !$0.key.hasPrefix("OTEL_LOGS_")
                && !$0.key.hasPrefix("OTEL_EXPORTER_OTLP_METRICS_") && !$0.key.hasPrefix("OTEL_EXPORTER_OTLP_LOGS_")
        }
        let endpoint = [otel["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], otel["OTEL_EXPORTER_OTLP_ENDPOINT"]]
            .compactMap { $0?.trimmed }.first { !$0.isEmpty }
        guard endpoint != nil, otel["OTEL_SDK_DISABLED"]?.trimmed.lowercased() != "true",
            otel["OTEL_TRACES_EXPORTER"]?.trimmed.lowercased() != "none"
        else { return nil }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            guard let value = otel[name]?.trimmed, !value.isEmpty else { continue }
            guard ["http/protobuf", "http/json"].contains(value.lowercased()) else {
                throw .invalidValue(
                    variable: name, value: value,
                    expected: "http/protobuf or http/json (OTLP over HTTP; gRPC is not built in)")
            }
            break // the traces' own variable wins
        }
        return otel
    }

}

extension OTel.Configuration {
    /// How agent-payments' tracer is made (swift-otel: OTLP over HTTP, service name
    /// `agent-payments`, no OpenTelemetry metrics or logs — this server's are Prometheus' and its
    /// own), before the ``ServerConfiguration/tracing`` variables override it: the host
    /// bootstraps it with `OTel.bootstrap(configuration:environment:)` and runs the service it
    /// returns first in its group, so that the exporter stops last and sends the last spans.
    public static var agentPayments: Self {
        var otel = Self.default
        otel.serviceName = "agent-payments"
        otel.metrics.enabled = false
        otel.logs.enabled = false
        otel.traces.otlpExporter.protocol = .httpProtobuf
        return otel
    }
}
