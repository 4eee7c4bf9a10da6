import Foundation
import Logging
import Postgres

/// The maintenance runtime of one worker: takes part in the election and, while elected, runs
/// each service whenever its interval has passed, on one session of its own.
struct Maintainer {
    let services: [any MaintenanceService]
    let logger: Logger
    private var elector = LeaderElector()
    private var lastRun: [ContinuousClock.Instant?]

    init(services: [any MaintenanceService], logger: Logger) {
        self.services = services
        self.logger = logger
        lastRun = Array(repeating: nil, count: services.count)
    }

    /// One round: an election attempt, then the services that are due. Errors are logged; a
    /// broken session gives up leadership (its lock went with it).
    mutating func tick(on connection: Connection, workerID: String) {
        do {
            if try elector.attempt(on: connection) {
                logger.info("elected to run queue maintenance", metadata: ["worker_id": "\(workerID)"])
            }
            guard elector.isLeader else { return }
            for (index, service) in services.enumerated() {
                if let last = lastRun[index], ContinuousClock.now - last < service.interval { continue }
                lastRun[index] = .now
                let changed = try service.runOnce(on: connection)
                if changed > 0 {  // promotions are routine; the rest is worth a line
                    logger.log(level: service is JobPromoter ? .debug : .info, "maintenance",
                               metadata: ["service": "\(service.name)", "changed": "\(changed)"])
                }
            }
        } catch {
            logger.error("queue maintenance failed", metadata: ["error": "\(error)"])
            if !connection.isConnected { elector.sessionLost() }
        }
    }
}
