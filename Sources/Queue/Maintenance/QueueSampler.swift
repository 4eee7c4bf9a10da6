import Foundation
import Postgres

/// Samples the queue's depth for metrics on the elected worker: `inmailq_queue_jobs{state,kind}`
/// (unfinished jobs) and `inmailq_queue_oldest_available_seconds{kind}`. One query per interval.
struct QueueSampler: MaintenanceService {
    let name = "queue sampler"
    let interval: Duration
    let gauges = SampledGauges()

    func runOnce(on connection: Connection) throws -> Int {
        var samples: [(label: String, dimensions: [(String, String)], value: Double)] = []
        for row in try connection.query("select kind, state, jobs, oldest_available_s from queue_depth()", prepared: true).rows {
            let kind = try row.decode(String.self, "kind")
            samples.append(("inmailq_queue_jobs", [("state", try row.decode(String.self, "state")), ("kind", kind)],
                            Double(try row.decode(Int.self, "jobs"))))
            if let oldest = try row.decode(Double?.self, "oldest_available_s") {
                samples.append(("inmailq_queue_oldest_available_seconds", [("kind", kind)], max(0, oldest)))
            }
        }
        gauges.publish(samples)
        return 0
    }

    func leadershipEnded() {
        gauges.clear()
    }
}
