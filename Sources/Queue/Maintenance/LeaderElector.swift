import Foundation
import Postgres

/// Elects the one worker that runs maintenance: whoever holds a session advisory lock. The lock
/// lives as long as the maintenance session, so a dead leader's lock goes with its connection
/// and another worker takes over at its next attempt.
struct LeaderElector {
    /// Key of the session advisory lock ("inmailq:leader").
    static let lockKey: Int64 = 0x696E_6D61_696C_7102

    private(set) var isLeader = false

    /// Tries to become the leader (a no-op for the leader). Returns true when this call won.
    mutating func attempt(on connection: Connection) throws -> Bool {
        guard !isLeader else { return false }
        isLeader = try connection.queryOne("select pg_try_advisory_lock(\(Self.lockKey)) as won").decode(Bool.self, "won")
        return isLeader
    }

    /// The session broke: its lock went with it.
    mutating func sessionLost() {
        isLeader = false
    }
}
