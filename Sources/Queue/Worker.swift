import Foundation
import Logging
import Postgres

/// How a worker process runs.
public struct WorkerConfiguration: Sendable {
    public var database: ConnectionConfiguration
    /// Jobs run at once, and handler threads: a thread runs one job, or a batch of jobs of a kind
    /// registered with a batch size. The worker's pool holds `sessions` sessions.
    public var concurrency: Int = 10
    /// Kinds to claim; nil means every kind that has a handler.
    public var kinds: [String]? = nil
    /// How long a claimed job stays leased without a heartbeat; renewed every third of it.
    public var lease: Duration = .seconds(30)
    /// Fallback poll when no NOTIFY arrives.
    public var pollInterval: Duration = .seconds(1)
    /// After SIGTERM, how long running jobs may take before they are released.
    public var shutdownDeadline: Duration = .seconds(20)
    /// First retry delay after a failure; doubles per attempt (with jitter) up to `retryCap`.
    public var retryBase: Duration = .seconds(1)
    public var retryCap: Duration = .seconds(3600)
    /// How often the elected worker promotes due jobs (and renews its leadership).
    public var maintenanceInterval: Duration = .milliseconds(500)
    /// How long the maintenance leader's term lasts without renewal: half a lease (at least a
    /// second), so a stopped leader's role is taken over well before its jobs' leases expire.
    public var leaderTerm: Duration { max(.seconds(1), lease / 2) }
    /// How often the elected worker samples the database for metrics (queue depth, the layer
    /// above's gauges); nil, the default, when the process exports no metrics: the samples'
    /// queries read every unfinished job, a cost with nobody to read the result.
    public var metricsSampleInterval: Duration? = nil
    /// Finished jobs older than this are pruned.
    public var retention: Duration = .seconds(7 * 86_400)
    /// Most jobs claimed in one round trip.
    public var maxClaimBatch: Int = 1_000
    /// Jobs claimed ahead, beyond the `concurrency` running: they wait for a handler slot, so that
    /// a handler finishing its batch starts the next at once while the next claim is under way
    /// (a batch frees its slots all at once, so claiming and running would otherwise take turns;
    /// jobs run one at a time free theirs one by one, and the next claim overlaps the others).
    /// nil: the largest batch size of the worker's kinds registered with one (at most
    /// `concurrency`, the most a batch can hold); none without.
    /// Shutdown releases them unstarted.
    public var claimAhead: Int? = nil
    /// Exit once no unfinished job of the worker's kinds remains (benchmarks, batch runs).
    public var exitWhenDone: Bool = false
    /// This worker's name in leases and logs.
    public var workerID: String
    /// A direct session for the producer (LISTEN and claims) when the pool's sessions go through
    /// a transaction pooler, which cannot carry LISTEN; nil: the producer's comes from the pool.
    public var producerDatabase: ConnectionConfiguration?

    public init(database: ConnectionConfiguration, workerID: String? = nil) {
        self.database = database
        self.workerID = workerID ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
    }

    /// Settings of every worker session that bound how long anything can wait or be held: a
    /// statement waits at most 5 s for a lock (then fails and is retried), and a session left idle
    /// inside a transaction for 30 s (a worker stopped mid-claim: SIGSTOP, a frozen VM) is ended by
    /// the server, releasing its locks; its jobs are rescued when their leases expire.
    public static let sessionSettings = ["lock_timeout": "5s", "idle_in_transaction_session_timeout": "30s"]

    /// The most database sessions the worker opens: one per handler thread, plus the producer's,
    /// the completer's and the maintenance session (the producer's is a direct one, outside the
    /// pool, when `producerDatabase` is set). Handlers hand theirs back while a courier
    /// works, so a courier that uses the database (the sandbox) fits in the same number.
    public var sessions: Int { concurrency + 3 }

    /// The delay before the next attempt after attempt `attempt` failed.
    func retryDelay(afterAttempt attempt: Int) -> Duration {
        let exponential = retryBase.seconds * pow(2, Double(min(attempt - 1, 30)))
        return .milliseconds(Int(min(exponential, retryCap.seconds) * Double.random(in: 0.8...1.2) * 1000))
    }
}

/// A worker process's job runtime: one thread claims jobs (woken by NOTIFY, polling only as a
/// fallback), `concurrency` threads run handlers (each one job at a time, or a batch of jobs of
/// a kind registered with a batch size), one thread writes outcomes in batches and
/// renews leases, and one takes part in electing the worker that does maintenance.
/// It is a swift-service-lifecycle `Service`: graceful shutdown drains, cancellation releases.
public final class Worker: Sendable {
    public let configuration: WorkerConfiguration
    let handlers: JobHandlers
    let logger: Logger
    /// Every session of the worker comes from here.
    let pool: ConnectionPool
    let state: WorkerState
    /// Written to on shutdown so that a thread waiting on a socket wakes up.
    let wakePipe: (read: Int32, write: Int32)
    let kinds: [String]
    /// Each kind's metrics, made once: the handlers read them without a lock.
    let metrics: [String: QueueMetrics.Kind]

    /// A worker for `handlers`, taking its sessions from `pool` (make it with `configuration.sessions`;
    /// the layer above's couriers may share it).
    public init(configuration: WorkerConfiguration, handlers: JobHandlers, pool: ConnectionPool, logger: Logger) throws {
        let kinds = configuration.kinds ?? handlers.kinds
        let unknown = kinds.filter { handlers[$0] == nil }
        guard unknown.isEmpty, !kinds.isEmpty else {
            throw WorkerError(description: unknown.isEmpty
                ? "no job kinds to run"
                : "no handler for job kind(s) \(unknown.joined(separator: ", ")); known kinds: \(handlers.kinds.joined(separator: ", "))")
        }
        guard configuration.concurrency > 0 else { throw WorkerError(description: "concurrency must be at least 1") }
        self.configuration = configuration
        self.handlers = handlers
        self.pool = pool
        self.logger = logger
        self.kinds = kinds
        metrics = QueueMetrics.of(kinds)
        state = WorkerState(concurrency: configuration.concurrency,
                            claimAhead: configuration.claimAhead
                                ?? min(configuration.concurrency, kinds.map(handlers.batchSize(of:)).filter { $0 > 1 }.max() ?? 0))
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { throw WorkerError(description: "cannot create a pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(descriptors[0], F_SETFL, fcntl(descriptors[0], F_GETFL) | O_NONBLOCK)
        wakePipe = (descriptors[0], descriptors[1])
    }

    /// Graceful shutdown: claims nothing more; running jobs may finish within the shutdown
    /// deadline, then are released to other workers. Callable from any thread, any number of times.
    public func drain() {
        guard state.currentPhase == .running else { return }
        logger.notice("shutdown requested: finishing running jobs")
        state.advance(to: .draining)
        wakeProducer()
    }

    /// Stops at once: running jobs are released to other workers (their late outcomes dropped).
    /// Callable from any thread.
    public func releaseNow() {
        guard state.currentPhase < .releasing else { return }
        logger.notice("releasing running jobs now")
        state.advance(to: .releasing)
        wakeProducer()
    }

    /// Wakes the producer if it sleeps on its connection's socket.
    private func wakeProducer() {
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    /// Runs on the calling thread until `drain` or `releaseNow` (or, with `exitWhenDone`, until
    /// the work is done) and every outcome is written. `run()` (the `Service`) wraps it.
    func runUntilStopped() throws {
        logger.info("worker started", metadata: [
            "worker_id": "\(configuration.workerID)", "concurrency": "\(configuration.concurrency)",
            "kinds": "\(kinds.joined(separator: ","))",
        ])
        startThread("maintenance") { self.maintenanceLoop() }
        startThread("completer") { self.completerLoop() }
        for index in 0..<configuration.concurrency {
            startThread("handler-\(index)") { self.handlerLoop() }
        }
        startThread("producer") { self.producerLoop() }

        state.sleep(.seconds(Double(Int32.max)), unlessPhaseReaches: .draining)
        let deadline = ContinuousClock.now + configuration.shutdownDeadline
        // A claim under way releases its jobs when it returns, while the completer still writes.
        state.waitForProducer(until: deadline)
        state.releaseUnstarted()
        let stillRunning = state.waitForExecutingJobs(until: deadline)
        if !stillRunning.isEmpty {
            logger.warning("releasing jobs that did not finish before the shutdown deadline", metadata: [
                "job_ids": "\(stillRunning.map(\.id).sorted().map(String.init).joined(separator: ","))",
            ])
            state.abandon(stillRunning)
        }
        state.advance(to: .stopping)
        state.waitForCompleter()
        logger.info("worker stopped", metadata: ["worker_id": "\(configuration.workerID)"])
    }

    private func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = "inmailq-\(name)"
        thread.start()
    }

    // MARK: Threads

    /// Checks a session out of the pool for a thread's lifetime, retrying with backoff until it
    /// works or the worker reaches `phase`.
    /// With `direct`, a session of its own on that database instead of one of the pool's.
    private func connectPersistently(_ role: String, until phase: WorkerState.Phase = .draining, direct: ConnectionConfiguration? = nil) -> Connection? {
        var delay = 0.1
        while state.currentPhase < phase {
            do {
                if var direct {
                    direct.applicationName = "inmailq-\(role)"
                    return try Connection(direct)
                }
                return try pool.checkOut(applicationName: "inmailq-\(role)")
            } catch {
                logger.error("cannot connect; retrying", metadata: ["role": "\(role)", "error": "\(error)", "retry_in_s": "\(delay)"])
                state.sleep(.milliseconds(Int(delay * 1000)), unlessPhaseReaches: phase)
                delay = min(delay * 2, 5)
            }
        }
        return nil
    }

    private func producerLoop() {
        defer { state.markProducerDone() }
        guard let connection = connectPersistently("producer", direct: configuration.producerDatabase) else { return }
        var failures = 0
        // Through a transaction pooler a LISTEN would hold on to whichever server session ran it.
        if !connection.configuration.transactionPooled {
            do {
                try connection.listen(JobQueue.wakeUpChannel)
            } catch {
                logger.error("cannot listen for wake-ups; polling only", metadata: ["error": "\(error)"])
            }
        }
        let poll = configuration.exitWhenDone ? min(configuration.pollInterval, .milliseconds(100)) : configuration.pollInterval
        while let free = state.waitForFreeSlots(minimum: max(1, configuration.concurrency / 4), patience: .milliseconds(2)) {
            let asked = min(free, configuration.maxClaimBatch)
            let jobs: [Job]
            let claimed: Int
            do {
                (jobs, claimed) = try JobQueue.claimAdmitted(
                    kinds: kinds, guards: handlers.guards, limit: asked, owner: configuration.workerID,
                    lease: configuration.lease, on: connection)
                failures = 0
            } catch {
                failures += 1
                logger.error("claim failed; retrying", metadata: ["error": "\(error)"])
                state.sleep(.milliseconds(min(5_000, 100 << min(failures, 6))), unlessPhaseReaches: .draining)
                continue
            }
            if !jobs.isEmpty { state.dispatch(jobs) }
            // Anything claimed: try again at once (rows other workers held are skipped, not
            // gone). Only an empty claim means the queue is dry for now.
            guard claimed == 0 else { continue }
            if configuration.exitWhenDone, state.isIdle, (try? QueueInspection.unfinishedJobsRemain(kinds: kinds, on: connection)) == false {
                logger.info("no unfinished jobs remain; exiting")
                state.advance(to: .draining)
                wakeProducer()
                return
            }
            // Sleep until a NOTIFY, the poll interval, or shutdown.
            _ = try? connection.nextNotification(timeout: poll, interruptDescriptor: wakePipe.read)
        }
    }

    private func handlerLoop() {
        var jobLogger = logger
        jobLogger[metadataKey: "worker_id"] = "\(configuration.workerID)"
        let context = JobContext(workerID: configuration.workerID, pool: pool, logger: jobLogger)
        let recordsMetrics = QueueMetrics.isEnabled
        while case let jobs = state.takeJobs(batchSize: handlers.batchSize(of:)), !jobs.isEmpty {
            let started = ContinuousClock.now
            let results = handlers.run(jobs, context: context)
            context.releaseConnection()
            let outcomes = zip(jobs, results).map { job, result in
                switch result {
                case .success(let outcome): (job.lease, outcome)
                case .failure(let error): (job.lease, JobOutcome.failed(error: "\(error)", retryIn: configuration.retryDelay(afterAttempt: job.attempt)))
                }
            }
            state.record(outcomes)
            let took = ContinuousClock.now - started
            for (job, (_, outcome)) in zip(jobs, outcomes) {
                if recordsMetrics { QueueMetrics.recordRun(job, outcome, took: took, in: metrics[job.kind]!) }
                log(job, outcome, took: took)
            }
        }
    }

    private func log(_ job: Job, _ outcome: JobOutcome, took: Duration) {
        if outcome == .completed || outcome == .completedInTransaction, logger.logLevel > .info { return }  // the hot path: build nothing
        var metadata: Logger.Metadata = [
            "job_id": "\(job.id)", "kind": "\(job.kind)", "attempt": "\(job.attempt)",
            "ms": "\(String(format: "%.1f", took.seconds * 1000))",
        ]
        switch outcome {
        case .completed, .completedInTransaction:
            logger.info("job completed", metadata: metadata)
        case .failed(let error, let retryIn):
            metadata["error"] = "\(error)"
            if job.attempt >= job.maxAttempts {
                logger.error("job discarded after its last attempt", metadata: metadata)
            } else {
                metadata["retry_in_s"] = "\(String(format: "%.1f", retryIn.seconds))"
                logger.warning("job failed; will retry", metadata: metadata)
            }
        case .snoozed(let delay):
            metadata["delay_s"] = "\(delay.seconds)"
            logger.info("job snoozed", metadata: metadata)
        case .deferred(let until):
            metadata["until"] = "\(until)"
            logger.info("job deferred", metadata: metadata)
        case .cancelled(let reason):
            metadata["reason"] = "\(reason)"
            logger.notice("job cancelled", metadata: metadata)
        case .released:
            logger.notice("job released", metadata: metadata)
        }
    }

    private func completerLoop() {
        defer { state.markCompleterDone() }
        guard let connection = connectPersistently("completer", until: .stopping) else { return }
        let heartbeatEvery = configuration.lease / 3
        var lastHeartbeat = ContinuousClock.now
        var pending: [(lease: JobLease, outcome: JobOutcome)] = []
        var failures = 0
        while true {
            let (batch, finalBatch) = state.takeOutcomes(timeout: min(heartbeatEvery, .milliseconds(200)))
            pending += batch
            if !pending.isEmpty {
                do {
                    try JobQueue.finish(pending, on: connection)
                    state.written(pending.map(\.lease))
                    pending.removeAll()
                    failures = 0
                } catch {
                    failures += 1
                    logger.error("writing job outcomes failed; retrying", metadata: ["error": "\(error)", "jobs": "\(pending.count)"])
                    if finalBatch && failures >= 5 {
                        logger.error("giving up on job outcomes: their leases will expire and they will run again", metadata: ["jobs": "\(pending.count)"])
                        return
                    }
                    Thread.sleep(forTimeInterval: min(2, 0.05 * Double(1 << min(failures, 6))))
                    continue
                }
            }
            if ContinuousClock.now - lastHeartbeat >= heartbeatEvery {
                lastHeartbeat = .now
                do {
                    try JobQueue.renewLeases(state.leases, lease: configuration.lease, on: connection)
                } catch {
                    logger.error("renewing leases failed", metadata: ["error": "\(error)"])
                }
            }
            if finalBatch && pending.isEmpty { return }  // at .stopping no handler adds outcomes
        }
    }

    /// Takes part in electing the maintenance leader and, while elected, runs the queue's
    /// services (promoter, rescuer, pruner) and those of the layer above.
    private func maintenanceLoop() {
        guard let connection = connectPersistently("maintenance") else { return }
        var maintainer = Maintainer(
            services: [
                JobPromoter(interval: configuration.maintenanceInterval),
                JobRescuer(interval: max(.milliseconds(250), configuration.lease / 4), logger: logger),
                HistoryPruner(interval: .seconds(60), retention: configuration.retention),
            ] + (configuration.metricsSampleInterval.map { [QueueSampler(interval: $0)] } ?? []) + handlers.maintenance,
            workerID: configuration.workerID, leaderTerm: configuration.leaderTerm, logger: logger)
        while state.currentPhase == .running {
            maintainer.tick(on: connection)
            state.sleep(configuration.maintenanceInterval, unlessPhaseReaches: .draining)
        }
        maintainer.resign(on: connection)
    }
}

/// A worker that cannot start as configured.
public struct WorkerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
