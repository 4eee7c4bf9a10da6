import Foundation
import Postgres

/// Deletes finished jobs older than the retention period from `job_history`.
struct HistoryPruner: MaintenanceService {
    let name = "pruner"
    let interval: Duration
    let retention: Duration
    var batch = 1_000

    func runOnce(on connection: Connection) throws -> Int {
        try inBatches(of: batch) { try QueueMaintenance.pruneFinishedJobs(olderThan: retention, limit: $0, on: connection) }
    }
}
