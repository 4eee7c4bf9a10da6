import Foundation
import Logging
import Postgres

/// Runs one job; returns its outcome. A thrown error fails the job (it is retried with backoff
/// until its last attempt). Called on a worker thread that owns `context` for its lifetime.
public typealias JobHandler = @Sendable (Job, JobContext) throws -> JobOutcome

/// Runs several claimed jobs of one kind together (so their database work can be done in a
/// few set-based statements); returns each job's outcome, or the error that fails it, in the
/// order of the jobs given. A thrown error fails them all. Called on a worker thread that owns
/// `context` for its lifetime.
public typealias BatchJobHandler = @Sendable ([Job], JobContext) throws -> [Result<JobOutcome, any Error>]

/// The handlers a worker runs, by job kind.
public struct JobHandlers: Sendable {
    struct Registered: Sendable {
        /// Most jobs handed to one call.
        let batchSize: Int
        let run: BatchJobHandler
    }

    private var byKind: [String: Registered] = [:]
    /// Guards that admit jobs of their kind inside the claim's transaction.
    public private(set) var guards: [String: any ClaimGuard] = [:]

    /// Maintenance services of the layer above, run by the elected worker beside the queue's own.
    public private(set) var maintenance: [any MaintenanceService] = []

    public init() {}

    /// Adds a maintenance service of the layer above.
    public mutating func addMaintenance(_ service: any MaintenanceService) {
        maintenance.append(service)
    }

    /// Registers `handler` for `kind`, replacing any earlier one; with `guard`, claimed jobs of
    /// the kind run only when the guard admits them in the claim's transaction.
    public mutating func register(_ kind: String, admittedBy guard: (any ClaimGuard)? = nil, _ handler: @escaping JobHandler) {
        register(kind, admittedBy: `guard`, batchSize: 1) { jobs, context in
            jobs.map { job in Result { try handler(job, context) } }
        }
    }

    /// Registers `handler` for `kind`, called with up to `batchSize` claimed jobs of the kind at
    /// a time (fewer when fewer are waiting), replacing any earlier one; `guard` as above.
    public mutating func register(
        _ kind: String, admittedBy guard: (any ClaimGuard)? = nil, batchSize: Int, _ handler: @escaping BatchJobHandler
    ) {
        byKind[kind] = Registered(batchSize: max(1, batchSize), run: handler)
        guards[kind] = `guard`
    }

    /// Replaces every kind's guard with `wrap(guard)`, for a layer that must act inside each
    /// guarded claim's transaction (the chaos run's fault that stops a worker there).
    public mutating func wrapGuards(_ wrap: (any ClaimGuard) -> any ClaimGuard) {
        guards = guards.mapValues(wrap)
    }

    /// The kinds that have a handler, sorted.
    public var kinds: [String] { byKind.keys.sorted() }

    /// Most jobs of `kind` run by one call of its handler.
    public func batchSize(of kind: String) -> Int { byKind[kind]?.batchSize ?? 1 }

    /// The handler of `kind` for one job at a time.
    public subscript(kind: String) -> JobHandler? {
        guard let registered = byKind[kind] else { return nil }
        return { job, context in try Self.results([job], registered, context)[0].get() }
    }

    /// Runs jobs of one kind that has a handler (a worker claims no other), at most its batch
    /// size, through that handler: one outcome or error per job, in order.
    func run(_ jobs: [Job], context: JobContext) -> [Result<JobOutcome, any Error>] {
        Self.results(jobs, byKind[jobs[0].kind]!, context)
    }

    private static func results(_ jobs: [Job], _ registered: Registered, _ context: JobContext) -> [Result<JobOutcome, any Error>] {
        do {
            let results = try registered.run(jobs, context)
            guard results.count == jobs.count else {
                let error = WorkerError(description: "the handler of \(jobs[0].kind) answered \(results.count) outcomes for \(jobs.count) jobs")
                return jobs.map { _ in .failure(error) }
            }
            return results
        } catch {
            return jobs.map { _ in .failure(error) }
        }
    }
}

/// What a handler may use while it runs a job: a database session from the process's pool
/// (checked out on first use and handed back after the job, or earlier with
/// `releaseConnection`) and a logger.
/// Not `Sendable`: it belongs to the one worker thread that runs handlers with it.
public final class JobContext {
    public let workerID: String
    public let logger: Logger
    private let pool: ConnectionPool
    private var leased: Connection?

    /// A context for running handlers outside a `Worker` (tests, tools); without `logger`, logs are dropped.
    public init(
        workerID: String, pool: ConnectionPool,
        logger: Logger = Logger(label: "inmailq.job", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.workerID = workerID
        self.pool = pool
        self.logger = logger
    }

    deinit {
        releaseConnection()
    }

    /// This job's session, checked out of the pool on first use (reconnecting by itself after a failure).
    public func connection() throws -> Connection {
        if let leased { return leased }
        let connection = try pool.checkOut()
        leased = connection
        return connection
    }

    /// Hands the session back to the pool, e.g. before a long call to the outside world that
    /// needs none (a courier's delivery); the next `connection()` checks one out again.
    public func releaseConnection() {
        guard let connection = leased.take() else { return }
        pool.checkIn(connection)
    }
}

/// Handlers for exercising the queue itself (benchmarks, tests, smoke checks); no domain logic.
public enum DiagnosticHandlers {
    /// `diag.noop`: completes at once.
    /// `diag.sleep` `{"ms": N}`: sleeps N milliseconds, then completes.
    /// `diag.fail` `{"times": N}`: fails its first N attempts, then completes.
    /// `diag.record` `{"table": "name"}`: inserts (job_id, worker_id, attempt) into that table, which the
    ///   caller created; a unique constraint there proves that each job ran once.
    public static func register(into handlers: inout JobHandlers) {
        handlers.register("diag.noop") { _, _ in .completed }
        handlers.register("diag.sleep") { job, _ in
            let args = try job.args.decode([String: Int].self)
            Thread.sleep(forTimeInterval: Double(args["ms"] ?? 0) / 1000)
            return .completed
        }
        handlers.register("diag.fail") { job, _ in
            let times = try job.args.decode([String: Int].self)["times"] ?? Int.max
            if job.attempt <= times {
                throw DiagnosticFailure(message: "diag.fail: failing attempt \(job.attempt) of \(times) on purpose")
            }
            return .completed
        }
        handlers.register("diag.record") { job, context in
            let table = try job.args.decode([String: String].self)["table"] ?? "diag_runs"
            try context.connection().execute(
                "insert into \(identifier: table) (job_id, worker_id, attempt) values (\(job.id), \(context.workerID), \(job.attempt))")
            return .completed
        }
    }

    struct DiagnosticFailure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
