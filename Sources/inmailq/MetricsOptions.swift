import ArgumentParser
import Foundation
import Logging
import Prometheus
import Server
import ServiceLifecycle

/// `--metrics-listen`, shared by `worker` and `serve`: where to expose /metrics (off by default).
struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Expose Prometheus metrics at http://host:port/metrics (with /healthz and /readyz for probes). Off unless given; 127.0.0.1:9464 is the usual choice.",
        valueName: "host:port"))
    var metricsListen: String?

    @Option(help: "Seconds between two samples of the database's gauges (queue depth, accounts), taken by the elected worker alone.")
    var metricsInterval: Double = 10

    func validate() throws {
        if let metricsListen { _ = try listenAddress(metricsListen, option: "--metrics-listen") }
        try requireInRange(metricsInterval, 0.1...3600, "--metrics-interval (seconds)")
    }

    /// The metrics server as a service, the Prometheus backend bootstrapped; nil when off.
    /// `process` names the process in the line printed to stdout once it listens.
    func service(process: String, logger: Logger) throws -> (any Service)? {
        guard let metricsListen else { return nil }
        let (host, port) = try listenAddress(metricsListen, option: "--metrics-listen")
        let server = MetricsServer(host: host, port: port, registry: MetricsServer.bootstrap(), logger: logger)
        return server.service { bound in
            logger.info("metrics", metadata: ["address": "http://\(host):\(bound)/metrics"])
            FileHandle.standardOutput.write(Data("inmailq \(process) metrics on http://\(host):\(bound)/metrics\n".utf8))
        }
    }
}
