import Foundation
import Postgres

/// Makes scheduled and retryable jobs whose time has come available, and wakes idle workers.
struct JobPromoter: MaintenanceService {
    let name = "promoter"
    let interval: Duration
    var batch = 1_000

    func runOnce(on connection: Connection) throws -> Int {
        try inBatches(of: batch) { try QueueMaintenance.promoteDueJobs(limit: $0, on: connection) }
    }
}
