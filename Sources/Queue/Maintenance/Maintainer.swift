import Foundation
import Logging
import Metrics
import Postgres

/// The maintenance runtime of one worker: takes part in the election and, while elected, runs
/// each service whenever its interval has passed, on one session of its own.
struct Maintainer {
    let services: [any MaintenanceService]
    let logger: Logger
    private var elector: LeaderElector
    private var lastRun: [ContinuousClock.Instant?]
    /// 1 while this worker is the elected one.
    private let leaderGauge = Gauge(label: "inmailq_maintenance_leader")

    init(services: [any MaintenanceService], workerID: String, leaderTerm: Duration, logger: Logger) {
        self.services = services
        self.logger = logger
        elector = LeaderElector(workerID: workerID, term: leaderTerm)
        lastRun = Array(repeating: nil, count: services.count)
        leaderGauge.record(0)
    }

    /// Records the end of this worker's term: its services unpublish what only a leader may.
    private mutating func leadershipEnded() {
        leaderGauge.record(0)
        lastRun = Array(repeating: nil, count: services.count)
        for service in services { service.leadershipEnded() }
    }

    /// One round: renew or win leadership, then run the services that are due. Errors are
    /// logged, and leadership is asked for again next round.
    mutating func tick(on connection: Connection) {
        do {
            let wasLeader = elector.isLeader
            if try elector.attempt(on: connection) {
                logger.info("elected to run queue maintenance", metadata: ["worker_id": "\(elector.workerID)"])
                leaderGauge.record(1)
            } else if wasLeader && !elector.isLeader {
                logger.warning("no longer the maintenance leader (its term ran out)", metadata: ["worker_id": "\(elector.workerID)"])
                leadershipEnded()
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
            if elector.isLeader { leadershipEnded() }
            elector.sessionLost()
        }
    }

    /// Hands leadership over at shutdown, so another worker takes over at once.
    mutating func resign(on connection: Connection) {
        if elector.isLeader { leadershipEnded() }
        do {
            try elector.resign(on: connection)
        } catch {
            logger.warning("could not hand maintenance over; another worker takes over when the term runs out", metadata: ["error": "\(error)"])
        }
    }
}
