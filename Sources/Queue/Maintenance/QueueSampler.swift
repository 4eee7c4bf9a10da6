import Foundation
import Postgres

/// Samples the queue's depth for metrics on the elected worker: `inmailq_queue_jobs{state,kind}`
/// (unfinished jobs), `inmailq_queue_oldest_available_seconds{kind}` and
/// `inmailq_queue_oldest_running_seconds{kind}`. One query per interval.
struct QueueSampler: MaintenanceService {
    let name = "queue sampler"
    let interval: Duration
    let gauges = SampledGauges()

    func runOnce(on connection: Connection) throws -> Int {
        var samples: [(label: String, dimensions: [(String, String)], value: Double)] = []
        var oldestAvailable: [String: Double] = [:], oldestRunning: [String: Double] = [:]
        for row in try connection.query("select kind, state, jobs, oldest_available_s, oldest_running_s from queue_depth()", prepared: true).rows {
            let kind = try row.decode(String.self, "kind")
            samples.append(("inmailq_queue_jobs", [("state", try row.decode(String.self, "state")), ("kind", kind)],
                            Double(try row.decode(Int.self, "jobs"))))
            // 0 for a kind with no such job: the series stays, and alerts on it see "none waiting".
            oldestAvailable[kind] = max(oldestAvailable[kind] ?? 0, try row.decode(Double?.self, "oldest_available_s") ?? 0)
            oldestRunning[kind] = max(oldestRunning[kind] ?? 0, try row.decode(Double?.self, "oldest_running_s") ?? 0)
        }
        for (kind, seconds) in oldestAvailable {
            samples.append(("inmailq_queue_oldest_available_seconds", [("kind", kind)], seconds))
        }
        for (kind, seconds) in oldestRunning {
            samples.append(("inmailq_queue_oldest_running_seconds", [("kind", kind)], seconds))
        }
        gauges.publish(samples)
        return 0
    }

    func leadershipEnded() {
        gauges.clear()
    }
}
