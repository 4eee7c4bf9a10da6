import Foundation
import Postgres

/// The queue's background statements, each one round trip working on at most `limit` jobs. The
/// maintenance services (`JobPromoter`, `JobRescuer`, `HistoryPruner`) run them on the elected
/// worker; each is also safe to run from several sessions at once.
public enum QueueMaintenance {
    /// Makes scheduled and retryable jobs whose run_at (business time) has come available, up
    /// to `limit` per call, and wakes idle workers. Returns how many it promoted.
    @discardableResult
    public static func promoteDueJobs(limit: Int = 10_000, on connection: Connection) throws -> Int {
        let promoted = try connection.queryOne(
            """
            with due as (
                select id from jobs
                where state in ('scheduled', 'retryable') and run_at <= clock_now()
                order by run_at
                limit \(limit)
                for update skip locked
            ), promoted as (
                update jobs set state = 'available' from due where jobs.id = due.id returning 1
            )
            select count(*) as n,
                   case when count(*) > 0 then queue_notify('promoted') end as notified
            from promoted
            """, prepared: true).decode(Int.self, "n")
        return promoted
    }

    /// Jobs whose lease expired (their worker died or hung) become available again; the attempt
    /// they were on stays counted, and one on its last attempt is discarded. Up to `limit` per call.
    /// Returns how many were rescued and how many discarded.
    @discardableResult
    public static func rescueExpiredLeases(limit: Int = 10_000, on connection: Connection) throws -> (rescued: Int, discarded: Int) {
        let row = try connection.queryOne(
            """
            with expired as (
                select id, attempt >= max_attempts as last_attempt,
                       jsonb_build_object('attempt', attempt, 'at', clock_timestamp(), 'action', 'rescue',
                           'error', 'lease expired: worker ' || lease_owner || ' stopped renewing it') as failure
                from jobs
                where state = 'running' and lease_expires_at < now()
                limit \(limit)
                for update skip locked
            ), discarded as (
                delete from jobs using expired
                where jobs.id = expired.id and expired.last_attempt
                returning jobs.*, 'discarded'::job_state as final_state, expired.failure as final_error
            ), archived as (
                \(JobQueue.archive(from: "discarded"))
            ), rescued as (
                update jobs
                set state = 'available', errors = errors || expired.failure, lease_owner = null, lease_token = null, lease_expires_at = null
                from expired
                where jobs.id = expired.id and not expired.last_attempt
                returning 1
            )
            select (select count(*) from rescued) as rescued, (select count(*) from archived) as discarded,
                   case when exists (select 1 from rescued) then queue_notify('rescued') end as notified
            """, prepared: true)
        return (try row.decode(Int.self, "rescued"), try row.decode(Int.self, "discarded"))
    }

    /// Deletes up to `limit` finished jobs older than `retention` (real time) from the history.
    @discardableResult
    public static func pruneFinishedJobs(olderThan retention: Duration, limit: Int = 10_000, on connection: Connection) throws -> Int {
        try connection.execute(
            """
            delete from job_history where ctid = any(array(
                select ctid from job_history
                where finished_at < now() - \(retention.seconds) * interval '1 second'
                limit \(limit)
            ))
            """, prepared: true)
    }
}
