import Foundation
import Postgres

/// The queue's background duties. They run on one elected worker at a time (see `Maintainer`),
/// but each is also safe to run from several sessions at once.
public enum QueueMaintenance {
    /// Makes scheduled and retryable jobs whose run_at (business time) has come available, up
    /// to `limit` per call, and wakes idle workers. Returns how many it promoted.
    @discardableResult
    public static func promoteDueJobs(limit: Int = 10_000, on connection: Connection) throws -> Int {
        let promoted = try connection.query(
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
                   case when count(*) > 0 then pg_notify(\(JobQueue.wakeUpChannel), 'promoted') end as notified
            from promoted
            """, prepared: true).first!.decode(Int.self, "n")
        return promoted
    }

    /// Jobs whose lease expired (their worker died or hung) become available again; the attempt
    /// they were on stays counted, and one on its last attempt is discarded. Returns how many.
    @discardableResult
    public static func rescueExpiredLeases(on connection: Connection) throws -> (rescued: Int, discarded: Int) {
        let row = try connection.query(
            """
            with expired as (
                select id, attempt >= max_attempts as last_attempt,
                       jsonb_build_object('attempt', attempt, 'at', clock_timestamp(), 'action', 'rescue',
                           'error', 'lease expired: worker ' || lease_owner || ' stopped renewing it') as failure
                from jobs
                where state = 'running' and lease_expires_at < now()
                for update skip locked
            ), discarded as (
                delete from jobs using expired
                where jobs.id = expired.id and expired.last_attempt
                returning jobs.*, 'discarded'::job_state as final_state, expired.failure as final_error
            ), archived as (
                \(JobQueue.archive(from: "discarded"))
            ), rescued as (
                update jobs
                set state = 'available', errors = errors || expired.failure, lease_owner = null, lease_expires_at = null
                from expired
                where jobs.id = expired.id and not expired.last_attempt
                returning 1
            )
            select (select count(*) from rescued) as rescued, (select count(*) from archived) as discarded,
                   case when exists (select 1 from rescued) then pg_notify(\(JobQueue.wakeUpChannel), 'rescued') end as notified
            """, prepared: true).first!
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
/// The business clock every worker reads (`clock_now()` in SQL): real time plus an offset
/// that only grows. Tests and demos move it forward so that days pass in seconds.
public enum QueueClock {
    /// Business "now" as the database sees it.
    public static func now(on connection: Connection) throws -> Date {
        try connection.query("select clock_now() as now").first!.decode(Date.self, "now")
    }

    /// Moves business time forward by `interval` and wakes workers; returns the new "now".
    @discardableResult
    public static func advance(by interval: Duration, on connection: Connection) throws -> Date {
        try connection.query("select clock_advance(\(interval.seconds) * interval '1 second') as now").first!.decode(Date.self, "now")
    }
}
