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
                select id from jobs
                where state = 'running' and lease_expires_at < now()
                for update skip locked
            ), rescued as (
                update jobs
                set state = case when attempt >= max_attempts then 'discarded' else 'available' end::job_state,
                    errors = errors || jsonb_build_object(
                        'attempt', attempt, 'at', clock_timestamp(), 'action', 'rescue',
                        'error', 'lease expired: worker ' || lease_owner || ' stopped renewing it'),
                    finished_at = case when attempt >= max_attempts then clock_timestamp() end,
                    lease_owner = null,
                    lease_expires_at = null
                from expired
                where jobs.id = expired.id
                returning jobs.state
            )
            select count(*) filter (where state = 'available') as rescued,
                   count(*) filter (where state = 'discarded') as discarded,
                   case when count(*) filter (where state = 'available') > 0
                        then pg_notify(\(JobQueue.wakeUpChannel), 'rescued') end as notified
            from rescued
            """, prepared: true).first!
        return (try row.decode(Int.self, "rescued"), try row.decode(Int.self, "discarded"))
    }

    /// Deletes up to `limit` jobs that finished more than `retention` ago (real time).
    @discardableResult
    public static func pruneFinishedJobs(olderThan retention: Duration, limit: Int = 10_000, on connection: Connection) throws -> Int {
        try connection.execute(
            """
            delete from jobs where id in (
                select id from jobs
                where state in ('completed', 'discarded', 'cancelled')
                  and finished_at < now() - \(retention.seconds) * interval '1 second'
                order by finished_at
                limit \(limit)
            )
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
