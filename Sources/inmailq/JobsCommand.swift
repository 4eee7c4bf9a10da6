import ArgumentParser
import Foundation
import Postgres
import Queue

/// `inmailq jobs ...`: look at the queue and cancel jobs.
struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, show and cancel jobs.",
        subcommands: [List.self, Show.self, Cancel.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count jobs by kind and state, or list the newest ones.")
        @OptionGroup var options: GlobalOptions

        @Option(help: "Only this state (scheduled, available, running, retryable, completed, discarded, cancelled).")
        var state: String?

        @Option(help: "Only this kind.")
        var kind: String?

        @Option(help: "List up to this many jobs instead of counting them.")
        var limit: Int?

        func validate() throws {
            if let state, JobState(rawValue: state) == nil {
                throw ValidationError("unknown state \"\(state)\"; use one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func run() throws {
            let connection = try options.connect()
            let filter: SQL = "(\(state)::job_state is null or state = \(state)::job_state) and (\(kind)::text is null or kind = \(kind)::text)"
            if let limit {
                let rows = try connection.query(
                    """
                    select id, kind, state::text as state, attempt, max_attempts, run_at
                    from all_jobs where \(filter) order by id desc limit \(limit)
                    """).rows
                print("id\tkind\tstate\tattempt\trun_at")
                for row in rows {
                    print("\(try row.decode(Int64.self, "id"))\t\(try row.decode(String.self, "kind"))\t\(try row.decode(String.self, "state"))\t\(try row.decode(Int.self, "attempt"))/\(try row.decode(Int.self, "max_attempts"))\t\(try row.decode(Date.self, "run_at").formatted(.iso8601))")
                }
                return
            }
            let rows = try connection.query(
                "select kind, state::text as state, count(*) as n from all_jobs where \(filter) group by 1, 2 order by 1, 2").rows
            print("kind\tstate\tjobs")
            for row in rows {
                print("\(try row.decode(String.self, "kind"))\t\(try row.decode(String.self, "state"))\t\(try row.decode(Int.self, "n"))")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one job as JSON, its error history included.")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "The job id.")
        var id: Int64

        func run() throws {
            let connection = try options.connect()
            guard let row = try connection.query("select jsonb_pretty(to_jsonb(j)) as job from all_jobs j where id = \(id)").first else {
                throw CommandFailure("no job with id \(id)")
            }
            print(try row.decode(String.self, "job"))
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job that is waiting (not one that is running or finished).")
        @OptionGroup var options: GlobalOptions

        @Argument(help: "The job id.")
        var id: Int64

        @Option(help: "Why, kept in the job's history.")
        var reason: String = "cancelled by an operator"

        func run() throws {
            let connection = try options.connect()
            switch try JobQueue.cancel(id: id, reason: reason, on: connection) {
            case nil: throw CommandFailure("no job with id \(id)")
            case .cancelled?: print("job \(id) cancelled")
            case let state?: throw CommandFailure("job \(id) is \(state.rawValue); only a scheduled, available or retryable job can be cancelled")
            }
        }
    }
}
