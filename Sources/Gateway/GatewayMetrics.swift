import Foundation
import Metrics
import NIOHTTP1
import Synchronization

/// The gateway client's metrics, through swift-metrics:
/// - `inmailq_gateway_requests_total{method,status}`: every request, by HTTP status, or
///   `status="none"` when no answer came (timeout, connection lost: the request may have gone out).
/// - `inmailq_gateway_request_duration_seconds{method}`: time to the answer or to giving up.
enum GatewayMetrics {
    private static let counters = Mutex<[String: Counter]>([:])
    private static let timers = Mutex<[String: Metrics.Timer]>([:])

    static func record(method: HTTPMethod, status: Int?, took: Duration) {
        let statusLabel = status.map(String.init) ?? "none"
        counters.withLock { known in
            let key = "\(method.rawValue) \(statusLabel)"
            let counter = known[key] ?? Counter(
                label: "inmailq_gateway_requests_total", dimensions: [("method", method.rawValue), ("status", statusLabel)])
            known[key] = counter
            return counter
        }.increment()
        let (seconds, attoseconds) = took.components
        timers.withLock { known in
            let timer = known[method.rawValue] ?? Metrics.Timer(
                label: "inmailq_gateway_request_duration_seconds", dimensions: [("method", method.rawValue)])
            known[method.rawValue] = timer
            return timer
        }.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
