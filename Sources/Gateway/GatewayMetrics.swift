import Foundation
import Metrics
import NIOHTTP1

/// The gateway client's metrics, through swift-metrics:
/// - `inmailq_gateway_requests_total{method,status}`: every request, by HTTP status, or
///   `status="none"` when no answer came (timeout, connection lost: the request may have gone out).
/// - `inmailq_gateway_request_duration_seconds{method}`: time to the answer or to giving up.
enum GatewayMetrics {
    static func record(method: HTTPMethod, status: Int?, took: Duration) {
        Counter(label: "inmailq_gateway_requests_total", dimensions: [("method", method.rawValue), ("status", status.map(String.init) ?? "none")])
            .increment()
        Metrics.Timer(label: "inmailq_gateway_request_duration_seconds", dimensions: [("method", method.rawValue)]).record(duration: took)
    }
}
