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
            let state = state.flatMap(JobState.init(rawValue:))
            if let limit {
                print("id\tkind\tstate\tattempt\trun_at")
                for job in try QueueInspection.newest(limit, state: state, kind: kind, on: connection) {
                    print("\(job.id)\t\(job.kind)\t\(job.state.rawValue)\t\(job.attempt)/\(job.maxAttempts)\t\(job.runAt.formatted(.iso8601))")
                }
                return
            }
            print("kind\tstate\tjobs")
            for row in try QueueInspection.counts(state: state, kind: kind, on: connection) {
                print("\(row.kind)\t\(row.state.rawValue)\t\(row.jobs)")
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
            guard let job = try QueueInspection.describe(id, on: connection) else {
                throw CommandFailure("no job with id \(id)")
            }
            print(job)
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a job that is waiting (not one that is running or finished).",
            discussion: """
                Exit status: 0 when the job is cancelled (now, or already before: cancelling twice is \
                harmless); 1 when there is no such job or it is running, completed or discarded \
                (nothing changes).
                """)
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
            case .alreadyCancelled?: print("job \(id) was already cancelled; nothing changed")
            case let .notCancellable(state)?:
                throw CommandFailure("job \(id) is \(state.rawValue); only a scheduled, available or retryable job can be cancelled")
            }
        }
    }
}
