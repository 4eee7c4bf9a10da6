import Foundation
import Postgres

/// The queue's operations on the `jobs` table. Each is one round trip on the connection given,
/// inside the caller's transaction when one is open (so a job commits with the rows it refers to).
public enum JobQueue {
    /// The channel on which enqueues, promotions and rescues wake idle workers.
    public static let wakeUpChannel = "queue_jobs_available"

    /// Enqueues jobs in one statement (`queue_enqueue`, the one way jobs are created, from SQL
    /// or Swift). Returns, in order, each new job's id, or nil where a job with the same unique
    /// key was already unfinished (that enqueue did nothing).
    @discardableResult
    public static func enqueue(_ jobs: [NewJob], on connection: Connection) throws -> [Int64?] {
        guard !jobs.isEmpty else { return [] }
        let result = try connection.query(
            """
            select job_id from queue_enqueue(
                \(jobs.map(\.kind))::text[], \(jobs.map(\.args))::jsonb[], \(jobs.map(\.runAt))::timestamptz[],
                \(jobs.map(\.priority))::smallint[], \(jobs.map(\.maxAttempts))::integer[], \(jobs.map(\.uniqueKey))::text[],
                \(jobs.map(\.partitionKey))::text[])
            """, prepared: true)
        return try result.rows.map { try $0.decode(Int64?.self, "job_id") }
    }

    /// Moves the available jobs of `kind` in `partition` whose args contain `argsContaining` (a
    /// JSON object; `{}` matches all) to run at `until`, so they wait instead of being claimed
    /// again and again. Rows other sessions hold are skipped. Returns how many moved.
    @discardableResult
    public static func deferJobs(
        partition: String, kind: String, argsContaining filter: JSONText, until: Date, on connection: Connection
    ) throws -> Int {
        try connection.queryOne(
            "select queue_defer(\(partition), \(kind), \(filter)::jsonb, \(until)) as moved", prepared: true
        ).decode(Int.self, "moved")
    }

    /// Claims up to `limit` available jobs of `kinds` in one statement, skipping rows other
    /// workers hold, and leases them to `owner` for `lease`, each under a new lease token. `condition`, from the layer above,
    /// narrows which jobs qualify (it sees the candidate row as `jobs`); run this inside a
    /// transaction to reserve what the claimed jobs need before they commit.
    public static func claim(
        kinds: [String], limit: Int, owner: String, lease: Duration,
        where condition: SQL? = nil, on connection: Connection
    ) throws -> [Job] {
        let extra: SQL = condition.map { "and (\($0))" } ?? ""
        // The wait since each job was due, for metrics; the business clock read once, not per row.
        let withWait = QueueMetrics.isEnabled
        let clock = SQL(unsafeText: withWait ? ", (select clock_now() as now) as clock" : "")
        let waited = SQL(unsafeText: withWait ? ", extract(epoch from clock.now - jobs.run_at)::float8 as waited_s" : "")
        let result = try connection.query(
            """
            with claimable as (
                select id from jobs
                where state = 'available' and kind = any(\(kinds)::text[]) \(extra)
                order by priority, id
                limit \(limit)
                for update skip locked
            )
            update jobs
            set state = 'running', attempt = jobs.attempt + 1, lease_owner = \(owner),
                lease_token = nextval('jobs_lease_token_seq'),
                lease_expires_at = now() + \(lease.seconds) * interval '1 second', attempted_at = clock_timestamp()
            from claimable\(clock)
            where jobs.id = claimable.id
            returning jobs.id, jobs.lease_token, jobs.kind, jobs.args, jobs.attempt, jobs.max_attempts, jobs.partition_key\(waited)
            """, prepared: condition == nil)
        return try result.rows.map { try Job(row: $0, withWait: withWait) }
    }

    /// Records many jobs' outcomes in one statement. Only jobs still held under the lease given
    /// change: a job whose lease expired and was rescued (or claimed again) meanwhile is left to
    /// its new run. Returns how many jobs were updated.
    @discardableResult
    public static func finish(_ outcomes: [(lease: JobLease, outcome: JobOutcome)], on connection: Connection) throws -> Int {
        guard !outcomes.isEmpty else { return 0 }
        // Completions, the bulk, are finished by id and token alone; the rest join their details.
        // Every access to jobs is bounded by an id array, so no plan can scan or loop over the table.
        // Planned on each call: a generic plan, which knows nothing of the arrays' sizes, joined a
        // seq scan of jobs (bench queue drained 1,900-3,800 jobs/s instead of 19,000-22,000).
        var completedIDs: [Int64] = []
        var completedTokens: [Int64] = []
        var ids: [Int64] = []
        var tokens: [Int64] = []
        var actions: [String] = []
        var messages: [String?] = []
        var delays: [Double] = []
        var untils: [Date?] = []
        for (lease, outcome) in outcomes {
            var action = "", message: String? = nil, delay = 0.0, until: Date? = nil
            switch outcome {
            case .completed:
                completedIDs.append(lease.id)
                completedTokens.append(lease.token)
                continue
            case .completedInTransaction: continue  // the handler's transaction finished it
            case .failed(let error, let retryIn): (action, message, delay) = ("fail", error, retryIn.seconds)
            case .snoozed(let wait): (action, delay) = ("snooze", wait.seconds)
            case .deferred(let date): (action, until) = ("snooze", date)
            case .cancelled(let reason): (action, message) = ("cancel", reason)
            case .released: action = "release"
            }
            ids.append(lease.id)
            tokens.append(lease.token)
            actions.append(action)
            messages.append(message)
            delays.append(delay)
            untils.append(until)
        }
        let row = try connection.queryOne(
            """
            with completed_leases as (
                select * from unnest(\(completedIDs)::bigint[], \(completedTokens)::bigint[]) as c(id, token)
            ), completed as (
                delete from jobs j using completed_leases c
                where j.id = any(\(completedIDs)::bigint[]) and j.id = c.id and j.lease_token = c.token and j.state = 'running'
                returning j.*, 'completed'::job_state as final_state, null::jsonb as final_error
            ), outcome as (
                select * from unnest(\(ids)::bigint[], \(tokens)::bigint[], \(actions)::text[], \(messages)::text[],
                                     \(delays)::float8[], \(untils)::timestamptz[])
                    as o(id, token, action, message, delay_seconds, until_at)
            ), ended as (
                delete from jobs j using outcome o
                where j.id = any(\(ids)::bigint[]) and j.id = o.id and j.lease_token = o.token and j.state = 'running'
                  and (o.action = 'cancel' or (o.action = 'fail' and j.attempt >= j.max_attempts))
                returning j.*,
                    case o.action when 'cancel' then 'cancelled' else 'discarded' end::job_state as final_state,
                    jsonb_build_object('attempt', j.attempt, 'at', clock_timestamp(), 'action', o.action, 'error', o.message)
                        as final_error
            ), finished as (
                select * from completed union all select * from ended
            ), archived as (
                \(archive(from: "finished"))
            ), updated as (
                update jobs j
                set state = case
                        when o.action = 'release' then 'available'
                        when o.action = 'snooze' and coalesce(o.until_at, clock_now() + o.delay_seconds * interval '1 second') > clock_now()
                            then 'scheduled'
                        when o.action = 'snooze' then 'available'
                        else 'retryable'
                    end::job_state,
                    run_at = case when o.action = 'release' then j.run_at
                                  else coalesce(o.until_at, clock_now() + o.delay_seconds * interval '1 second') end,
                    attempt = case when o.action = 'fail' then j.attempt else j.attempt - 1 end,
                    errors = case when o.action = 'fail'
                        then j.errors || jsonb_build_object('attempt', j.attempt, 'at', clock_timestamp(), 'action', 'fail', 'error', o.message)
                        else j.errors end,
                    lease_owner = null,
                    lease_token = null,
                    lease_expires_at = null
                from outcome o
                where j.id = any(\(ids)::bigint[]) and j.id = o.id and j.lease_token = o.token and j.state = 'running'
                  and (o.action in ('snooze', 'release') or (o.action = 'fail' and j.attempt < j.max_attempts))
                returning 1
            )
            select (select count(*) from archived) + (select count(*) from updated) as changed
            """)
        return try row.decode(Int.self, "changed")
    }

    /// An INSERT that moves rows returned by a DELETE on `jobs` (the CTE named `source`, with
    /// extra columns `final_state` and `final_error`) into `job_history`. Finishing, cancelling
    /// and rescuing all use it; the other writer of `job_history` is SQL's `queue_complete`
    /// (completion in a handler's transaction): keep the two alike.
    static func archive(from source: String) -> SQL {
        SQL(unsafeText: """
            insert into job_history (id, kind, args, state, priority, run_at, attempt, max_attempts, errors,
                                     unique_key, partition_key, created_at, attempted_at, finished_at)
            select id, kind, args, final_state, priority, run_at, attempt, max_attempts,
                   case when final_error is null then errors else errors || final_error end,
                   unique_key, partition_key, created_at, attempted_at, clock_timestamp()
            from \(source)
            returning 1
            """)
    }

    /// Extends the leases still held under the tokens given (a HOT update: no indexed column changes).
    @discardableResult
    public static func renewLeases(_ leases: [JobLease], lease: Duration, on connection: Connection) throws -> Int {
        guard !leases.isEmpty else { return 0 }
        return try connection.execute(
            """
            update jobs j set lease_expires_at = now() + \(lease.seconds) * interval '1 second'
            from unnest(\(leases.map(\.id))::bigint[], \(leases.map(\.token))::bigint[]) as l(id, token)
            where j.id = any(\(leases.map(\.id))::bigint[]) and j.id = l.id and j.lease_token = l.token and j.state = 'running'
            """)
    }

    /// Completes jobs in the caller's transaction (`queue_complete`), so that a handler's own
    /// writes and its jobs' completion commit together or not at all; the handler then returns
    /// `.completedInTransaction`. Raises (SQLSTATE 55000), changing nothing, unless every lease is
    /// still held.
    public static func complete(_ leases: [JobLease], on connection: Connection) throws {
        guard !leases.isEmpty else { return }
        try connection.execute("select queue_complete(\(leases.map(\.id))::bigint[], \(leases.map(\.token))::bigint[])", prepared: true)
    }

    /// Raises unless `lease` is still held: call it in the transaction of a write that a stale
    /// run (one whose lease expired and whose job was rescued) must not make. The job's row stays
    /// locked until that transaction ends.
    public static func requireLease(_ lease: JobLease, on connection: Connection) throws {
        try connection.execute("select queue_require_lease(\(lease.id), \(lease.token))", prepared: true)
    }

    /// What `cancel` did.
    public enum CancelOutcome: Sendable, Equatable {
        /// The job was waiting and is cancelled now.
        case cancelled
        /// The job had been cancelled before; nothing changed.
        case alreadyCancelled
        /// The job is running or finished in this state and cannot be cancelled; nothing changed.
        case notCancellable(JobState)
    }

    /// Cancels a job that has not finished and is not running. Returns what happened, or nil
    /// for an unknown id.
    @discardableResult
    public static func cancel(id: Int64, reason: String, on connection: Connection) throws -> CancelOutcome? {
        let result = try connection.query(
            """
            with cancelled as (
                delete from jobs
                where id = \(id) and state in ('scheduled', 'available', 'retryable')
                returning *, 'cancelled'::job_state as final_state,
                    jsonb_build_object('attempt', attempt, 'at', clock_timestamp(), 'action', 'cancel', 'error', \(reason)::text)
                        as final_error
            ), archived as (
                \(archive(from: "cancelled"))
            )
            select 'cancelled'::job_state as state, true as now from archived
            union all
            select state, false from all_jobs where id = \(id) and not exists (select 1 from cancelled)
            """)
        guard let row = result.first else { return nil }
        let state = try row.decode(JobState.self, "state")
        if try row.decode(Bool.self, "now") { return .cancelled }
        return state == .cancelled ? .alreadyCancelled : .notCancellable(state)
    }
}
