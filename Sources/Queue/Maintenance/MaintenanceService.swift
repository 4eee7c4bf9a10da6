import Foundation
import Postgres

/// A background duty of the queue, or of the layer above, that the elected worker runs every
/// `interval` (real time). Register the layer above's with `JobHandlers.addMaintenance`.
public protocol MaintenanceService: Sendable {
    /// A name for logs.
    var name: String { get }
    var interval: Duration { get }
    /// Does the work that is due, in batches until a short one, on the maintenance session.
    /// Returns how many things it changed (logged when not zero). Throwing is logged and the
    /// service runs again at its next interval.
    func runOnce(on connection: Connection) throws -> Int
    /// This worker is no longer the elected one (its term ran out, or it resigned): drop what
    /// only the elected worker may publish, such as sampled gauges.
    func leadershipEnded()
}

extension MaintenanceService {
    public func leadershipEnded() {}
}

/// Runs a batched step until a batch comes back shorter than `batch`; returns the total.
func inBatches(of batch: Int, _ step: (Int) throws -> Int) rethrows -> Int {
    var total = 0
    while true {
        let done = try step(batch)
        total += done
        if done < batch { return total }
    }
}
