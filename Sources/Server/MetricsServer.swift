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

    /// What GET /metrics answers: every series of `registry` in Prometheus's text format, each
    /// database sample whole (`SampledGauges`).
    public static func exposition(of registry: PrometheusCollectorRegistry) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        SampledGauges.readWholeSamples { registry.emit(into: &buffer) }
        return buffer
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
