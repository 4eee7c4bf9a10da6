import ArgumentParser
import Foundation
import InMail
import Postgres
import Queue

/// `inmailq enqueue`: adds jobs by hand (operations, smoke tests).
struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Add jobs to the queue and print their ids.",
        discussion: "Example: inmailq enqueue diag.sleep --args '{\"ms\": 50}' --count 100"
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: "The job kind, e.g. diag.noop.")
    var kind: String

    @Option(help: "The job's arguments as a JSON object.")
    var args: String = "{}"

    @Option(help: "How many identical jobs.")
    var count: Int = 1

    @Option(help: "Seconds (business time) until the job may run.")
    var delay: Double = 0

    @Option(help: "Priority; lower runs first.")
    var priority: Int = 0

    @Option(help: "Attempts before the job is discarded.")
    var maxAttempts: Int = 20

    @Option(help: "A key that makes the enqueue a no-op while a job with it is unfinished.")
    var uniqueKey: String?

    @Flag(help: "Enqueue a kind this build has no handler for (a worker of another build runs it).")
    var force = false

    func validate() throws {
        var diagnostics = JobHandlers()
        DiagnosticHandlers.register(into: &diagnostics)
        let known = diagnostics.kinds + InMailHandlers.kinds
        guard force || known.contains(kind) else {
            throw ValidationError("no worker of this build runs jobs of kind \"\(kind.prefix(100))\" (known: \(known.sorted().joined(separator: ", "))); add --force to enqueue it anyway")
        }
        guard args.utf8.count <= 65_536 else {
            throw ValidationError("--args is \(args.utf8.count) bytes; at most 65536 are accepted")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(args.utf8))) is [String: Any] else {
            throw ValidationError("--args must be a JSON object, got: \(args.prefix(80))\(args.count > 80 ? "..." : "")")
        }
        try requireInRange(count, 1...100_000, "--count")
        try requireInRange(delay, 0...(10 * 365 * 86_400), "--delay")
        try requireInRange(priority, -100...100, "--priority")
        try requireInRange(maxAttempts, 1...1000, "--max-attempts")
        guard uniqueKey == nil || count == 1 else { throw ValidationError("--unique-key needs --count 1") }
    }

    func run() throws {
        let connection = try options.connect()
        let runAt = delay > 0 ? try QueueClock.now(on: connection).addingTimeInterval(delay) : nil
        let job = NewJob(kind: kind, args: JSONText(args), runAt: runAt, priority: priority, maxAttempts: maxAttempts, uniqueKey: uniqueKey)
        let ids = try connection.transaction { connection in
            try JobQueue.enqueue(Array(repeating: job, count: count), on: connection)
        }
        for id in ids {
            print(id.map(String.init) ?? "skipped: an unfinished job has unique key \(uniqueKey ?? "")")
        }
    }
}
