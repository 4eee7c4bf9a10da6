import Foundation
import Logging
import Postgres

/// Gives the jobs of workers that stopped renewing their leases (dead, hung, cut off) back to
/// the queue, or discards those that were on their last attempt.
struct JobRescuer: MaintenanceService {
    let name = "rescuer"
    let interval: Duration
    let logger: Logger
    var batch = 1_000

    func runOnce(on connection: Connection) throws -> Int {
        var discarded = 0
        let rescued = try inBatches(of: batch) { limit in
            let round = try QueueMaintenance.rescueExpiredLeases(limit: limit, on: connection)
            discarded += round.discarded
            return round.rescued + round.discarded
        }
        if rescued > 0 {
            logger.warning("rescued jobs whose lease expired", metadata: [
                "rescued": "\(rescued - discarded)", "discarded": "\(discarded)",
            ])
        }
        return rescued
    }
}
