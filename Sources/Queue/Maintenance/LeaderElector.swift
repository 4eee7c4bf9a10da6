import Foundation
import Postgres

/// Elects the one worker that runs maintenance: the one whose term in `queue_leader` runs. The
/// leader renews its term before every round of maintenance; a leader that dies or stops (a
/// SIGSTOP, a frozen VM) lets its term run out, and another worker takes over at its next round.
/// A stopped leader that wakes up renews first, finds another in charge, and does nothing.
struct LeaderElector {
    let workerID: String
    /// How long a term lasts without renewal.
    let term: Duration

    private(set) var isLeader = false

    /// Renews or wins leadership, or learns that another worker leads. Returns true when this
    /// worker just became the leader.
    mutating func attempt(on connection: Connection) throws -> Bool {
        let wasLeader = isLeader
        isLeader = try connection.queryOne(
            "select queue_elect(\(workerID), \(term.seconds) * interval '1 second') as leads", prepared: true
        ).decode(Bool.self, "leads")
        return isLeader && !wasLeader
    }

    /// Leadership may have been lost with the session or the term: ask again next round.
    mutating func sessionLost() {
        isLeader = false
    }

    /// Hands leadership over at shutdown.
    mutating func resign(on connection: Connection) throws {
        guard isLeader else { return }
        try connection.execute("select queue_resign(\(workerID))")
        isLeader = false
    }
}
