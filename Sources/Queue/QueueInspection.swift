import Foundation
import Postgres

/// Read-only views of the queue for operators and benchmarks: counts, listings and a job's
/// whole record, unfinished and finished jobs alike (`all_jobs`).
public enum QueueInspection {
    /// A job as operators list it.
    public struct Summary: Sendable, Equatable {
        public let id: Int64
        public let kind: String
        public let state: JobState
        public let attempt: Int
        public let maxAttempts: Int
        public let runAt: Date
    }

    /// How many jobs there are per kind and state (optionally of one state or kind), by kind then state.
    public static func counts(state: JobState? = nil, kind: String? = nil, on connection: Connection) throws
        -> [(kind: String, state: JobState, jobs: Int)]
    {
        try connection.query(
            """
            select kind, state, count(*) as n from all_jobs
            where \(filter(state: state, kind: kind))
            group by 1, 2 order by 1, 2
            """
        ).rows.map { (try $0.decode(String.self, "kind"), try $0.decode(JobState.self, "state"), try $0.decode(Int.self, "n")) }
    }

    /// The newest `limit` jobs (optionally of one state or kind), newest first.
    public static func newest(_ limit: Int, state: JobState? = nil, kind: String? = nil, on connection: Connection) throws -> [Summary] {
        try connection.query(
            """
            select id, kind, state, attempt, max_attempts, run_at from all_jobs
            where \(filter(state: state, kind: kind))
            order by id desc limit \(limit)
            """
        ).rows.map {
            Summary(
                id: try $0.decode(Int64.self, "id"), kind: try $0.decode(String.self, "kind"),
                state: try $0.decode(JobState.self, "state"), attempt: try $0.decode(Int.self, "attempt"),
                maxAttempts: try $0.decode(Int.self, "max_attempts"), runAt: try $0.decode(Date.self, "run_at"))
        }
    }

    /// One job as indented JSON, its error history included; nil for an unknown id.
    public static func describe(_ id: Int64, on connection: Connection) throws -> String? {
        try connection.query("select jsonb_pretty(to_jsonb(j)) as job from all_jobs j where id = \(id)")
            .rows.first?.decode(String.self, "job")
    }

    /// True while a job of `kinds` is unfinished.
    public static func unfinishedJobsRemain(kinds: [String], on connection: Connection) throws -> Bool {
        try connection.queryOne("select exists (select 1 from jobs where kind = any(\(kinds)::text[])) as remain")
            .decode(Bool.self, "remain")
    }

    /// How many jobs completed (finished and kept in the history).
    public static func completedCount(on connection: Connection) throws -> Int {
        try connection.queryOne("select count(*) as n from job_history where state = 'completed'").decode(Int.self, "n")
    }

    /// Seconds from the first attempt to the last finish among finished jobs (0 when none).
    public static func busySeconds(on connection: Connection) throws -> Double {
        try connection.queryOne(
            "select coalesce(extract(epoch from max(finished_at) - min(attempted_at)), 0)::float8 as s from job_history"
        ).decode(Double.self, "s")
    }

    /// The median and 99th percentile, in milliseconds, of finished jobs' wait from enqueue to first start.
    public static func startLatency(on connection: Connection) throws -> (p50: Double, p99: Double) {
        let row = try connection.queryOne(
            """
            select coalesce(percentile_cont(0.5) within group (order by ms), 0) as p50,
                   coalesce(percentile_cont(0.99) within group (order by ms), 0) as p99
            from (select extract(epoch from attempted_at - created_at) * 1000 as ms from job_history) samples
            """)
        return (try row.decode(Double.self, "p50"), try row.decode(Double.self, "p99"))
    }

    private static func filter(state: JobState?, kind: String?) -> SQL {
        "(\(state)::job_state is null or state = \(state)::job_state) and (\(kind)::text is null or kind = \(kind)::text)"
    }
}

/// Ways to put a queue in a known state for benchmarks. Never for a database with real work.
public enum QueueBenchmarkSetup {
    /// Removes every job, unfinished and finished.
    public static func removeAllJobs(on connection: Connection) throws {
        try connection.execute("truncate jobs, job_history")
    }

    /// Adds `scheduled` no-op jobs due 30 days or more from now, and `finished` completed ones in
    /// the history, then vacuums: a table like one that has worked for a while.
    public static func addParkedJobs(scheduled: Int, finished: Int, kind: String, on connection: Connection) throws {
        try connection.execute(
            """
            insert into jobs (kind, state, run_at)
            select \(kind), 'scheduled', clock_now() + interval '30 days' + n * interval '1 second'
            from generate_series(1, \(scheduled)) as n
            """)
        try connection.execute(
            """
            insert into job_history (id, kind, args, state, priority, run_at, attempt, max_attempts, errors,
                                     created_at, attempted_at, finished_at)
            select -n, \(kind), '{}', 'completed', 0, clock_now(), 1, 20, '[]', now(), now(), now()
            from generate_series(1, \(finished)) as n
            """)
        try connection.runScript("vacuum analyze jobs, job_history")
    }
}
