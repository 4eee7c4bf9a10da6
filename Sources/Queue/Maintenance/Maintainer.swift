import Foundation
import Logging
import Postgres

/// The maintenance runtime of one worker: takes part in the election and, while elected, runs
/// each service whenever its interval has passed, on one session of its own.
struct Maintainer {
    let services: [any MaintenanceService]
    let logger: Logger
    private var elector: LeaderElector
    private var lastRun: [ContinuousClock.Instant?]

    init(services: [any MaintenanceService], workerID: String, leaderTerm: Duration, logger: Logger) {
        self.services = services
        self.logger = logger
        elector = LeaderElector(workerID: workerID, term: leaderTerm)
        lastRun = Array(repeating: nil, count: services.count)
    }

    /// One round: renew or win leadership, then run the services that are due. Errors are
    /// logged, and leadership is asked for again next round.
    mutating func tick(on connection: Connection) {
        do {
            let wasLeader = elector.isLeader
            if try elector.attempt(on: connection) {
                logger.info("elected to run queue maintenance", metadata: ["worker_id": "\(elector.workerID)"])
            } else if wasLeader && !elector.isLeader {
                logger.warning("no longer the maintenance leader (its term ran out)", metadata: ["worker_id": "\(elector.workerID)"])
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
            elector.sessionLost()
        }
    }

    /// Hands leadership over at shutdown, so another worker takes over at once.
    mutating func resign(on connection: Connection) {
        do {
            try elector.resign(on: connection)
        } catch {
            logger.warning("could not hand maintenance over; another worker takes over when the term runs out", metadata: ["error": "\(error)"])
        }
    }
}
