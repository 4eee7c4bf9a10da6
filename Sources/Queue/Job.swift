import Foundation
import Postgres

/// Where a job stands: the `job_state` SQL enum.
public enum JobState: String, Sendable, PostgresEnum {
    case scheduled, available, running, retryable, completed, discarded, cancelled

    /// True for the states a job never leaves.
    public var isFinished: Bool { self == .completed || self == .discarded || self == .cancelled }
}

/// A job to enqueue.
public struct NewJob: Sendable {
    public var kind: String
    public var args: JSONText
    /// Business time at which it may run; nil means now.
    public var runAt: Date?
    /// Lower runs first; 0 by default.
    public var priority: Int
    public var maxAttempts: Int
    /// While a job with this key is unfinished, enqueueing another with the same key does nothing.
    public var uniqueKey: String?
    /// What the job belongs to, for the layer above (e.g. a sender account).
    public var partitionKey: String?

    public init(
        kind: String, args: JSONText = JSONText("{}"), runAt: Date? = nil, priority: Int = 0,
        maxAttempts: Int = 20, uniqueKey: String? = nil, partitionKey: String? = nil
    ) {
        self.kind = kind
        self.args = args
        self.runAt = runAt
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.uniqueKey = uniqueKey
        self.partitionKey = partitionKey
    }
}

/// One claim's hold on a job: the job and the token that claim drew. A later claim of the same
/// job (after its lease expired) draws another, so a stale run is told apart from the current one.
public struct JobLease: Sendable, Hashable {
    public let id: Int64
    public let token: Int64

    public init(id: Int64, token: Int64) {
        self.id = id
        self.token = token
    }
}

/// A claimed job, as its handler sees it.
public struct Job: Sendable {
    public let id: Int64
    /// This run's lease: finishing the job, and writes that must not come from a stale run, check it.
    public let lease: JobLease
    public let kind: String
    public let args: JSONText
    /// This run's attempt number, from 1.
    public let attempt: Int
    public let maxAttempts: Int
    public let partitionKey: String?
    /// How long it had been due (business time) when this run claimed it; zero unless the
    /// claim computed it (`withWait`, when metrics are on).
    public let waited: Duration

    init(row: Row, withWait: Bool = false) throws {
        id = try row.decode(Int64.self, "id")
        lease = JobLease(id: id, token: try row.decode(Int64.self, "lease_token"))
        kind = try row.decode(String.self, "kind")
        args = try row.decode(JSONText.self, "args")
        attempt = try row.decode(Int.self, "attempt")
        maxAttempts = try row.decode(Int.self, "max_attempts")
        partitionKey = try row.decode(String?.self, "partition_key")
        waited = withWait ? .milliseconds(Int((try row.decode(Double.self, "waited_s") * 1000).rounded())) : .zero
    }
}

/// What became of one run of a job.
public enum JobOutcome: Sendable, Equatable {
    /// Done; the job is completed.
    case completed
    /// Done, and already completed by the handler in its own transaction (`JobQueue.complete`,
    /// or `queue_complete` in SQL): the worker writes nothing more for it.
    case completedInTransaction
    /// Failed; retried after a backoff, or discarded after its last attempt.
    case failed(error: String, retryIn: Duration)
    /// Run again after `delay` (business time), without spending an attempt.
    case snoozed(delay: Duration)
    /// Run again at `until` (business time), without spending an attempt.
    case deferred(until: Date)
    /// Stop for good, with a reason.
    case cancelled(reason: String)
    /// Not run (the worker is shutting down): back to available, the attempt not spent.
    case released
}
