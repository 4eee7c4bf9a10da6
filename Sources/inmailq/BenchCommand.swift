import ArgumentParser
import EmbeddedPostgres
import Foundation
import Postgres
import Queue

/// `inmailq bench ...`: throughput and latency figures, one machine-readable line each.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the queue, the send path, the CSV import, the webhooks and an agency at scale on a throwaway database; print one key=value line.",
        subcommands: [QueueBench.self, PipelineBench.self, ImportBench.self, WebhookBench.self, ScaleBench.self]
    )
}

/// `inmailq bench queue`: no-op jobs through real worker processes.
struct QueueBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Enqueue N no-op jobs, drain them with P worker processes, measure wake-up latency.",
        discussion: """
            Runs on a fresh database (inmailq_bench_<pid>) of the configured server, dropped \
            afterwards. Progress goes to standard error; the result is one line on standard output:
              bench=queue cores=2 jobs=... enqueue_jobs_per_s=... drain_jobs_per_s=... latency_p50_ms=... latency_p99_ms=...
            With --scheduled M it also measures the claim with M future-scheduled jobs in the table.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "No-op jobs to enqueue and drain.")
    var jobs: Int = 20_000

    @Option(help: "Worker processes.")
    var processes: Int = 2

    @Option(help: "Concurrency of each worker process.")
    var concurrency: Int = 100

    @Option(help: "Jobs enqueued one at a time to measure enqueue-to-start latency.")
    var latencySamples: Int = 200

    @Option(help: "Future-scheduled jobs (plus half as many finished ones) to add before measuring the claim again.")
    var scheduled: Int = 0

    @Flag(help: "Run the workers as a login of the inmailq_worker role (row-level security applies), not the benchmark's own.")
    var workerRole = false

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    func validate() throws {
        guard jobs > 0, processes > 0, concurrency > 0, latencySamples > 0, scheduled >= 0 else {
            throw ValidationError("--jobs, --processes, --concurrency and --latency-samples must be positive; --scheduled not negative")
        }
    }

    func run() throws {
        var bench = try BenchDatabase(options: options)
        if workerRole { try bench.useWorkerRole() }
        defer { if !keep { bench.drop() } }
        var results: [(String, String)] = [
            ("bench", "queue"), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ("worker_role", workerRole ? "inmailq_worker" : "owner"),
            ("jobs", "\(jobs)"), ("processes", "\(processes)"), ("concurrency", "\(concurrency)"),
        ]
        let connection = try Connection(bench.configuration)

        progress("enqueueing \(jobs) no-op jobs")
        let enqueueStart = ContinuousClock.now
        var remaining = jobs
        while remaining > 0 {
            let batch = min(remaining, 5_000)
            try JobQueue.enqueue(Array(repeating: NewJob(kind: "diag.noop"), count: batch), on: connection)
            remaining -= batch
        }
        let enqueueSeconds = (ContinuousClock.now - enqueueStart).seconds
        results.append(("enqueue_jobs_per_s", format(Double(jobs) / enqueueSeconds)))

        progress("draining with \(processes) worker processes x \(concurrency)")
        let drainStart = ContinuousClock.now
        let drainers = try (0..<processes).map { _ in try bench.startWorker(concurrency: concurrency, extra: ["--exit-when-done"]) }
        for worker in drainers {
            guard worker.wait() == 0 else { throw CommandFailure("a worker failed; its log: \(bench.workerLog)") }
        }
        let drainSeconds = (ContinuousClock.now - drainStart).seconds
        let completed = try QueueInspection.completedCount(on: connection)
        guard completed == jobs else { throw CommandFailure("only \(completed) of \(jobs) jobs completed; worker log: \(bench.workerLog)") }
        let busySeconds = try QueueInspection.busySeconds(on: connection)
        results.append(("drain_jobs_per_s", format(Double(jobs) / drainSeconds)))
        results.append(("drain_busy_jobs_per_s", format(Double(jobs) / busySeconds)))

        progress("measuring enqueue-to-start latency with \(latencySamples) jobs one at a time")
        try QueueBenchmarkSetup.removeAllJobs(on: connection)
        let listeners = try (0..<processes).map { _ in try bench.startWorker(concurrency: concurrency, extra: []) }
        defer { listeners.forEach { $0.signal(SIGTERM); $0.wait() } }
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        try waitUntil(completed: 1, on: connection)
        for _ in 0..<latencySamples {
            try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
            Thread.sleep(forTimeInterval: 0.005)
        }
        try waitUntil(completed: latencySamples + 1, on: connection)
        let latency = try QueueInspection.startLatency(on: connection)
        results.append(("latency_p50_ms", format(latency.p50, digits: 2)))
        results.append(("latency_p99_ms", format(latency.p99, digits: 2)))
        listeners.forEach { $0.signal(SIGTERM); $0.wait() }

        if scheduled > 0 {
            try QueueBenchmarkSetup.removeAllJobs(on: connection)
            let empty = try measureClaims(on: connection)
            progress("adding \(scheduled) future-scheduled jobs and \(scheduled / 2) finished ones")
            try QueueBenchmarkSetup.addParkedJobs(scheduled: scheduled, finished: scheduled / 2, kind: "diag.noop", on: connection)
            let loaded = try measureClaims(on: connection)
            results += [
                ("scheduled", "\(scheduled)"),
                ("claim_p50_ms_empty", format(empty.p50, digits: 3)), ("claim_p99_ms_empty", format(empty.p99, digits: 3)),
                ("claim_p50_ms_scheduled", format(loaded.p50, digits: 3)), ("claim_p99_ms_scheduled", format(loaded.p99, digits: 3)),
            ]
        }
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    private func waitUntil(completed: Int, on connection: Connection) throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while try QueueInspection.completedCount(on: connection) < completed {
            guard ContinuousClock.now < deadline else { throw CommandFailure("jobs did not complete within 120 s") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}

/// A throwaway database for one benchmark run, and the worker processes that use it.
struct BenchDatabase {
    let name: String
    let admin: ConnectionConfiguration
    let configuration: ConnectionConfiguration
    let workerLog: String
    /// The login the workers connect as; nil: the benchmark's own.
    private(set) var workerLogin: String?

    init(options: GlobalOptions) throws {
        let base = try options.connectionConfiguration(applicationName: "inmailq-bench")
        let name = "inmailq_bench_\(getpid())"
        let connection = try Connection(base)
        try connection.runScript("drop database if exists \(quoteIdentifier(name))")
        try connection.runScript("create database \(quoteIdentifier(name))")
        do {
            try self.init(name: name, admin: base, made: "ready")
        } catch {
            // Not ready, so no run will drop it: it goes now rather than lingering.
            _ = try? connection.runScript("drop database if exists \(quoteIdentifier(name)) with (force)")
            throw error
        }
    }

    /// A benchmark database an earlier run kept (`--keep`), with this build's SQL migrated onto it.
    init(existing name: String, options: GlobalOptions) throws {
        let base = try options.connectionConfiguration(applicationName: "inmailq-bench")
        guard name.hasPrefix("inmailq_bench_") else {
            throw CommandFailure("\(name) is not a benchmark database (their names start with inmailq_bench_)")
        }
        let exists = try Connection(base).query("select 1 from pg_database where datname = \(name)").rowCount > 0
        guard exists else { throw CommandFailure("no database named \(name) (kept by a run with --keep?)") }
        try self.init(name: name, admin: base, made: "reused")
    }

    /// Database `name` with the shipped SQL migrated onto it.
    private init(name: String, admin: ConnectionConfiguration, made: String) throws {
        self.name = name
        self.admin = admin
        configuration = try admin.withDatabase(name)
        try SQLFiles.shippedMigrator(sandbox: true).migrate(try Connection(configuration))
        workerLog = NSTemporaryDirectory() + "\(name).log"
        progress("benchmark database \(name) \(made); worker log: \(workerLog)")
    }

    /// Runs the workers as the login `inmailq_bench_worker`, a member of inmailq_worker only
    /// (sql/access), so that they pay for row-level security as production workers do. The
    /// server must let that login in without a password (the embedded cluster's socket does).
    mutating func useWorkerRole() throws {
        let connection = try Connection(configuration)
        try connection.runScript(
            """
            do $$ begin
                if not exists (select 1 from pg_roles where rolname = 'inmailq_bench_worker') then
                    create role inmailq_bench_worker login;
                end if;
            end $$;
            grant inmailq_worker to inmailq_bench_worker;
            """)
        workerLogin = "inmailq_bench_worker"
        progress("workers log in as inmailq_bench_worker (role inmailq_worker)")
    }

    /// Starts `inmailq worker` on the benchmark database (same executable as this process).
    func startWorker(concurrency: Int, kinds: String = "diag.noop", extra: [String], environment: [String: String] = [:]) throws
        -> ChildProcess
    {
        var full = ProcessInfo.processInfo.environment
        full.merge(environment) { $1 }
        return try ChildProcess.spawn(
            [Self.executable, "worker", "--database-url", configuration.conninfo + (workerLogin.map { " user=\($0)" } ?? ""),
             "--concurrency", "\(concurrency)",
             "--kinds", kinds, "--log-level", "warning"] + extra,
            environment: full, outputPath: workerLog)
    }

    /// This program, to start children of.
    static let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

    /// A new agency named `agency` and a client workspace for the benchmark's accounts and campaigns.
    func workspace(agency: String, on connection: Connection) throws -> Int64 {
        try connection.queryOne("select admin_create_workspace(admin_create_agency(\(agency)), 'Bench client') as id")
            .decode(Int64.self, "id")
    }

    func drop() {
        _ = try? Connection(admin).runScript("drop database if exists \(quoteIdentifier(name)) with (force)")
        try? FileManager.default.removeItem(atPath: workerLog)
    }
}

/// Starts this program with `arguments` (output to `log`) and waits until it prints a line
/// starting with `announcement`, followed by its URL; returns it and that URL.
func startListening(_ arguments: [String], environment extra: [String: String], log: String, announcement: String) throws
    -> (ChildProcess, String)
{
    var environment = ProcessInfo.processInfo.environment
    environment.merge(extra) { $1 }
    let child = try ChildProcess.spawn([BenchDatabase.executable] + arguments, environment: environment, outputPath: log)
    for _ in 0..<600 {
        if let line = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").first(where: { $0.hasPrefix(announcement) }) {
            return (child, String(line.dropFirst(announcement.count)))
        }
        Thread.sleep(forTimeInterval: 0.05)
    }
    child.signal(SIGKILL)
    _ = child.wait()
    throw CommandFailure("`inmailq \(arguments[0])` did not start; its output is in \(log)")
}

/// Times `samples` claims of one no-op job each (enqueue and finish are not timed); in ms.
func measureClaims(on connection: Connection, samples: Int = 500) throws -> (p50: Double, p99: Double) {
    progress("timing \(samples) claims")
    var times: [Double] = []
    for _ in 0..<samples {
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        let start = ContinuousClock.now
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 10, owner: "bench", lease: .seconds(30), on: connection)
        times.append((ContinuousClock.now - start).seconds * 1000)
        try JobQueue.finish(claimed.map { ($0.lease, JobOutcome.completed) }, on: connection)
    }
    times.sort()
    return (times[times.count / 2], times[min(times.count - 1, Int(Double(times.count) * 0.99))])
}

func progress(_ message: String) {
    FileHandle.standardError.write(Data("bench: \(message)\n".utf8))
}

func format(_ value: Double, digits: Int = 0) -> String {
    String(format: "%.\(digits)f", value)
}
