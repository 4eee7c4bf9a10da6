import Foundation
import Postgres

/// Admits claimed jobs of some kinds inside the claim's own transaction, so that what a job
/// needs (the layer above reserves it here) commits together with the claim or not at all.
public protocol ClaimGuard: Sendable {
    /// Called in the claim's transaction with the claimed jobs of the guarded kinds. Returns the
    /// jobs that may not run now, each with the business time at which to try again; they are
    /// deferred in the same transaction, without spending an attempt. Throwing rolls the claim back.
    func admit(_ jobs: [Job], on connection: Connection) throws -> [Int64: Date]
}

extension JobQueue {
    /// Claims jobs as `claim` does (one prepared statement, whatever guards exist), and lets each
    /// kind's guard admit or defer its jobs in the same transaction. Returns the admitted jobs,
    /// and how many were claimed in all (deferred ones are already back in the queue).
    public static func claimAdmitted(
        kinds: [String], guards: [String: any ClaimGuard], limit: Int, owner: String, lease: Duration,
        on connection: Connection
    ) throws -> (admitted: [Job], claimed: Int) {
        let started = ContinuousClock.now
        let (admitted, deferredKinds) = try claimDeferring(kinds: kinds, guards: guards, limit: limit, owner: owner, lease: lease, on: connection)
        if QueueMetrics.isEnabled {
            QueueMetrics.recordClaim(admitted: admitted, deferredKinds: deferredKinds, took: ContinuousClock.now - started)
        }
        return (admitted, admitted.count + deferredKinds.count)
    }

    /// The claim of `claimAdmitted`: the admitted jobs, and the kind of each deferred one.
    private static func claimDeferring(
        kinds: [String], guards: [String: any ClaimGuard], limit: Int, owner: String, lease: Duration,
        on connection: Connection
    ) throws -> (admitted: [Job], deferredKinds: [String]) {
        let guarded = kinds.compactMap { kind in guards[kind].map { (kind, $0) } }
        guard !guarded.isEmpty else {
            let jobs = try claim(kinds: kinds, limit: limit, owner: owner, lease: lease, on: connection)
            return (jobs, [])
        }
        return try connection.transaction(retry: .retryable) { transaction in
            let claimed = try claim(kinds: kinds, limit: limit, owner: owner, lease: lease, on: transaction)
            var deferred: [Int64: Date] = [:]
            for (kind, admission) in guarded {
                let ofKind = claimed.filter { $0.kind == kind }
                if !ofKind.isEmpty {
                    deferred.merge(try admission.admit(ofKind, on: transaction)) { $1 }
                }
            }
            if !deferred.isEmpty {
                try finish(
                    claimed.compactMap { job in deferred[job.id].map { (job.lease, JobOutcome.deferred(until: $0)) } },
                    on: transaction)
            }
            return (claimed.filter { deferred[$0.id] == nil }, claimed.filter { deferred[$0.id] != nil }.map(\.kind))
        }
    }
}
