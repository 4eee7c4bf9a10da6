import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import Queue
import ServiceLifecycle

/// A process's metrics in Prometheus's text format, on an address of their own (never on the
/// webhook port a load balancer exposes):
///
///     GET /metrics    every series this process records (swift-metrics, Prometheus backend)
///     GET /healthz    200 while the process runs (a liveness probe)
///     GET /readyz     200 as well: a worker serves no traffic, so serving is being ready
///
/// Call `bootstrap()` once, before anything records a metric; without it every metric is a no-op.
public struct MetricsServer: Sendable {
    public let host: String
    public let port: Int
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
    }

    /// Makes swift-prometheus the process's metrics backend, with inmailq's histogram buckets, and
    /// returns its registry. Once per process.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.durationHistogramBuckets["inmailq_job_wait_seconds"] = QueueMetrics.waitBuckets
        MetricsSystem.bootstrap(factory)
        QueueMetrics.enable()
        return registry
    }

    /// What GET /metrics answers, in Prometheus's text format: every series of `registry`, then
    /// the latest database samples (`SampledGauges`), each whole.
    public static func exposition(of registry: PrometheusCollectorRegistry) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        appendGauges(SampledGauges.currentSeries(), to: &buffer)
        return buffer
    }

    /// Writes `series` as gauges. The format wants a metric's lines together, under its TYPE
    /// line: they are grouped by name, the names in the order they first appear.
    static func appendGauges(_ series: [SampledGauges.Series], to buffer: inout [UInt8]) {
        var groups: [String: Int] = [:]
        var members: [[Int]] = []
        for (index, one) in series.enumerated() {
            if let group = groups[one.label] {
                members[group].append(index)
            } else {
                groups[one.label] = members.count
                members.append([index])
            }
        }
        buffer.reserveCapacity(buffer.count + series.count * 64)
        for group in members {
            buffer.append(contentsOf: "# TYPE \(series[group[0]].label) gauge\n".utf8)
            for index in group {
                let one = series[index]
                buffer.append(contentsOf: one.label.utf8)
                for (position, (name, value)) in one.dimensions.enumerated() {
                    buffer.append(position == 0 ? UInt8(ascii: "{") : UInt8(ascii: ","))
                    buffer.append(contentsOf: name.utf8)
                    buffer.append(contentsOf: "=\"".utf8)
                    appendEscaped(value, to: &buffer)
                    buffer.append(UInt8(ascii: "\""))
                }
                if !one.dimensions.isEmpty { buffer.append(UInt8(ascii: "}")) }
                buffer.append(UInt8(ascii: " "))
                buffer.append(contentsOf: sampleValue(one.value).utf8)
                buffer.append(UInt8(ascii: "\n"))
            }
        }
    }

    /// A label value as the text format writes it: backslash, double quote and line feed escaped.
    static func appendEscaped(_ value: String, to buffer: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\""): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\n"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            default: buffer.append(byte)
            }
        }
    }

    /// A sample value as the text format writes it (NaN, +Inf and -Inf spelled its way).
    static func sampleValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return "\(value)"
    }

    /// The server as a service to run in the process's service group; `onListening` gets the bound port.
    public func service(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> any Service {
        let router = Router(context: BasicRequestContext.self)
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: Self.exposition(of: registry))))
        }
        router.get("/healthz") { _, _ in WebhookServer.json(.ok, ["status": "up"]) }
        router.get("/readyz") { _, _ in WebhookServer.json(.ok, ["status": "ready"]) }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "inmailq-metrics"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }
}
