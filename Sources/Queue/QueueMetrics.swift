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

/// Gauges whose set of label values comes from a database sample: each sample sets the series it
/// names and removes the ones it no longer names, and `clear` removes them all (a worker that
/// stops being the elected sampler must not keep exporting stale values). Thread-safe.
///
/// A sample is published whole: a scrape that reads the metrics through `readWholeSamples` sees
/// every series of a sample with its value, or the sample before it, never a part (a new series
/// is made, then given its value; an alert on a missing or zero series would fire on a half).
public final class SampledGauges: Sendable {
    /// Held while any instance publishes, and while a scrape reads (`readWholeSamples`).
    private static let publishing = Mutex<Void>(())
    private let gauges = Mutex<[[String]: Gauge]>([:])
    /// Where the gauges are made; nil: the process's metrics backend (`MetricsSystem`).
    private let factory: (any MetricsFactory)?

    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory
    }

    /// One sample: (name, dimensions, value) per series.
    public func publish(_ samples: [(label: String, dimensions: [(String, String)], value: Double)]) {
        Self.publishing.withLock { _ in
            gauges.withLock { current in
                var seen = Set<[String]>()
                for sample in samples {
                    let key = [sample.label] + sample.dimensions.flatMap { [$0.0, $0.1] }
                    seen.insert(key)
                    let gauge = current[key]
                        ?? Gauge(label: sample.label, dimensions: sample.dimensions, factory: factory ?? MetricsSystem.factory)
                    current[key] = gauge
                    gauge.record(sample.value)
                }
                for (key, gauge) in current where !seen.contains(key) {
                    gauge.destroy()
                    current[key] = nil
                }
            }
        }
    }

    /// Removes every series.
    public func clear() { publish([]) }

    /// Runs `read` (a scrape of the process's metrics) while no sample is being published.
    public static func readWholeSamples(_ read: () -> Void) {
        publishing.withLock { _ in read() }
    }
}
