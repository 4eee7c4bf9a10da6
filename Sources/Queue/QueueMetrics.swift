import Foundation
import Metrics
import Synchronization

/// The queue's metrics, recorded through swift-metrics (a no-op until the process bootstraps a
/// backend). Names follow Prometheus's conventions: `_total` for counters, base units (seconds).
///
/// Counted by each worker process for the jobs it ran:
/// - `inmailq_jobs_claimed_total{kind}`: jobs claimed (admitted or deferred by a claim guard).
/// - `inmailq_jobs_completed_total{kind}`, `inmailq_jobs_failed_total{kind}` (an attempt failed and
///   the job will be retried), `inmailq_jobs_discarded_total{kind}` (its last attempt failed),
///   `inmailq_jobs_snoozed_total{kind}` (snoozed or deferred, by its handler or at the claim, no
///   attempt spent), `inmailq_jobs_cancelled_total{kind}`, `inmailq_jobs_released_total{kind}`.
/// - `inmailq_job_duration_seconds{kind}`: how long handlers ran.
/// - `inmailq_job_wait_seconds{kind}`: from when a job became due to when a worker claimed it.
/// - `inmailq_claim_duration_seconds`: one claim's round trip, guards included.
///
/// Sampled from the database by the elected worker only (`QueueSampler`), so that N workers
/// do not run N copies of the query: `inmailq_queue_jobs{state,kind}`,
/// `inmailq_queue_oldest_available_seconds{kind}` and `inmailq_queue_oldest_running_seconds{kind}`;
/// and `inmailq_maintenance_leader` is 1 on the elected worker, 0 elsewhere.
public enum QueueMetrics {
    private static let enabled = Atomic<Bool>(false)

    /// True once the process chose a metrics backend (`enable()`): until then the hot path
    /// records nothing and claims do not compute each job's wait.
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Call after bootstrapping a swift-metrics backend, before the worker starts.
    public static func enable() { enabled.store(true, ordering: .relaxed) }

    /// Histogram buckets (seconds) for the job wait, which spans milliseconds to hours.
    public static let waitBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(30), .seconds(120), .seconds(600), .seconds(3600),
    ]

    struct Kind {
        let claimed, completed, failed, discarded, snoozed, cancelled, released: Counter
        let duration, wait: Metrics.Timer

        init(_ kind: String) {
            let dimensions = [("kind", kind)]
            claimed = Counter(label: "inmailq_jobs_claimed_total", dimensions: dimensions)
            completed = Counter(label: "inmailq_jobs_completed_total", dimensions: dimensions)
            failed = Counter(label: "inmailq_jobs_failed_total", dimensions: dimensions)
            discarded = Counter(label: "inmailq_jobs_discarded_total", dimensions: dimensions)
            snoozed = Counter(label: "inmailq_jobs_snoozed_total", dimensions: dimensions)
            cancelled = Counter(label: "inmailq_jobs_cancelled_total", dimensions: dimensions)
            released = Counter(label: "inmailq_jobs_released_total", dimensions: dimensions)
            duration = Metrics.Timer(label: "inmailq_job_duration_seconds", dimensions: dimensions)
            wait = Metrics.Timer(label: "inmailq_job_wait_seconds", dimensions: dimensions)
        }
    }

    /// Made once per kind and process: the hot path looks them up, it does not create them.
    private static let kinds = Mutex<[String: Kind]>([:])
    static let claimDuration = Metrics.Timer(label: "inmailq_claim_duration_seconds")

    /// The metrics of `kinds`, made on first use: one lock per call, not per job.
    static func of(_ kinds: some Sequence<String>) -> [String: Kind] {
        self.kinds.withLock { known in
            var found: [String: Kind] = [:]
            for kind in kinds where found[kind] == nil {
                let metrics = known[kind] ?? Kind(kind)
                known[kind] = metrics
                found[kind] = metrics
            }
            return found
        }
    }

    /// Counts a claim: every job it took, the ones its guards deferred, and how long each
    /// admitted job had waited since it was due.
    static func recordClaim(admitted: [Job], deferredKinds: [String], took: Duration) {
        claimDuration.record(duration: took)
        guard !admitted.isEmpty || !deferredKinds.isEmpty else { return }
        let metrics = of(admitted.map(\.kind) + deferredKinds)
        for job in admitted {
            metrics[job.kind]!.claimed.increment()
            metrics[job.kind]!.wait.record(duration: max(.zero, job.waited))
        }
        for kind in deferredKinds {
            metrics[kind]!.claimed.increment()
            metrics[kind]!.snoozed.increment()
        }
    }

    /// Counts one run's outcome and duration, with `metrics` the job's kind's (`of`).
    static func recordRun(_ job: Job, _ outcome: JobOutcome, took: Duration, in metrics: Kind) {
        metrics.duration.record(duration: took)
        switch outcome {
        case .completed, .completedInTransaction: metrics.completed.increment()
        case .failed: (job.attempt >= job.maxAttempts ? metrics.discarded : metrics.failed).increment()
        case .snoozed, .deferred: metrics.snoozed.increment()
        case .cancelled: metrics.cancelled.increment()
        case .released: metrics.released.increment()
        }
    }
}

/// Gauges whose set of label values comes from a database sample: each sample replaces the
/// series of the one before it (a series it no longer names is gone), and `clear` removes them
/// all (a worker that stops being the elected sampler must not keep exporting stale values).
/// Thread-safe.
///
/// The samples are not swift-metrics gauges: each instance keeps its latest sample whole, and the
/// metrics endpoint renders every instance's series when it is scraped (`currentSeries`). So a
/// scrape sees a sample whole or not at all, and publishing a sample is one array's swap. (Made
/// as one gauge per series, a sample could be scraped half made, and the Prometheus registry
/// copied all the series of a name to add one: the first sample of 100,000 accounts, 500,000
/// series, had not been published after ten minutes.)
public final class SampledGauges: Sendable {
    /// One series: its metric name, its labels and its value.
    public typealias Series = (label: String, dimensions: [(String, String)], value: Double)

    /// The latest sample of every instance, by instance, in the order the instances were made.
    private static let samples = Mutex<(made: Int, latest: [Int: [Series]])>((0, [:]))
    private let instance: Int

    public init() {
        instance = Self.samples.withLock { samples in
            samples.made += 1
            return samples.made
        }
    }

    deinit { clear() }

    /// One sample: (name, dimensions, value) per series.
    public func publish(_ series: [Series]) {
        let replaced = Self.samples.withLock { $0.latest.updateValue(series, forKey: instance) }
        _ = replaced  // freed here, not under the lock a scrape waits for
    }

    /// Removes every series.
    public func clear() {
        let removed = Self.samples.withLock { $0.latest.removeValue(forKey: instance) }
        _ = removed  // freed here, not under the lock
    }

    /// Every series of every instance's latest sample, for a scrape.
    public static func currentSeries() -> [Series] {
        let latest = samples.withLock { $0.latest }
        return latest.keys.sorted().flatMap { latest[$0]! }
    }
}
