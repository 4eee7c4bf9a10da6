import Foundation

/// The state a worker's threads share: claimed jobs waiting for a handler thread, outcomes
/// waiting to be written, the jobs this worker holds leases on, and the shutdown phase.
///
/// At most `concurrency` jobs run at once. While every job running is part of a batch (a kind
/// registered with a batch size over one), up to `claimAhead` more may be claimed and wait in the
/// inbox: a batch frees its slots all at once, so without them claiming and running would take
/// turns; with them, a handler finishing a batch starts the next at once while the producer's
/// next claim is under way. Jobs run one at a time free their slots one by one, and claims
/// overlap the jobs still running; none are claimed ahead of them, for another worker may be idle.
///
/// `@unchecked Sendable` because it is a monitor: every mutable field is read and written only
/// while `monitor` is locked, which the compiler cannot see.
final class WorkerState: @unchecked Sendable {
    enum Phase: Comparable {
        /// Claiming and running jobs.
        case running
        /// Shutdown requested: no more claims; jobs being run may finish.
        case draining
        /// Release requested: jobs being run are released without waiting for them.
        case releasing
        /// Running jobs finished or were released: outcomes are flushed, then the worker exits.
        case stopping
    }

    private let monitor = Monitor(conditionCount: 4)
    /// Condition variables: what each kind of thread waits for.
    private static let jobWaiting = 0  // handler threads: a job in the inbox
    private static let slotFree = 1  // the producer: a handler slot came free
    private static let outcomeWaiting = 2  // the completer: an outcome to write
    private static let control = 3  // shutdown steps: phase changes, jobs ending, completer done
    private let concurrency: Int
    private let claimAhead: Int
    private var phase = Phase.running
    /// Claimed jobs no handler thread has taken yet.
    private var inbox: [Job] = []
    /// Jobs a handler thread is running (ids), for the release at the deadline.
    private var executing: Set<JobLease> = []
    /// Those of `executing` run in batches of more than one.
    private var executingInBatches: Set<JobLease> = []
    /// Outcomes not yet written to the database.
    private var outcomes: [(lease: JobLease, outcome: JobOutcome)] = []
    /// Jobs leased to this worker whose outcome is not yet written: their leases are renewed.
    private var leased: Set<JobLease> = []
    /// Jobs released at the deadline: a late outcome from their handler is dropped.
    private var abandoned: Set<JobLease> = []
    private var producerDone = false
    private var completerDone = false
    /// Free slots the producer waits for (0 when it is not waiting): handlers wake it only then.
    private var producerWants = 0

    init(concurrency: Int, claimAhead: Int = 0) {
        self.concurrency = concurrency
        self.claimAhead = max(0, claimAhead)
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        try monitor.withLock(body)
    }

    private func wakeEveryone() {
        for condition in 0..<4 { monitor.broadcast(condition) }
    }

    var currentPhase: Phase { locked { phase } }

    /// Moves to a later phase (never back) and wakes every waiting thread.
    func advance(to next: Phase) {
        locked {
            if next > phase { phase = next }
            wakeEveryone()
        }
    }

    /// Jobs the producer may claim: the handler slots (and the claim-ahead while only batches
    /// run), less the jobs waiting or running.
    private var freeSlots: Int {
        let ahead = !executing.isEmpty && executingInBatches.count == executing.count ? claimAhead : 0
        return concurrency + ahead - inbox.count - executing.count
    }

    /// Waits until at least `minimum` slots are free, or some are and `patience` has passed
    /// (so that claims come in batches), or the worker stops claiming. Returns the free slots,
    /// or nil once no more claims should be made.
    func waitForFreeSlots(minimum: Int, patience: Duration) -> Int? {
        locked {
            var firstFree: ContinuousClock.Instant?
            while phase == .running {
                let free = freeSlots
                if free >= minimum { return free }
                if free > 0 {
                    let since = firstFree ?? ContinuousClock.now
                    firstFree = since
                    if ContinuousClock.now - since >= patience { return free }
                    producerWants = minimum
                    monitor.wait(Self.slotFree, timeout: patience - (ContinuousClock.now - since))
                } else {
                    producerWants = 1
                    monitor.wait(Self.slotFree)
                }
                producerWants = 0
            }
            return nil
        }
    }

    /// Hands claimed jobs to the handler threads; once the worker takes no more jobs (a claim
    /// that was under way when shutdown began), releases them to other workers instead.
    func dispatch(_ jobs: [Job]) {
        locked {
            for job in jobs { leased.insert(job.lease) }
            guard phase == .running else {
                for job in jobs { outcomes.append((job.lease, .released)) }
                monitor.signal(Self.outcomeWaiting)
                return
            }
            inbox.append(contentsOf: jobs)
            // One wake-up per job, not a broadcast to every idle handler thread.
            for _ in jobs { monitor.signal(Self.jobWaiting) }
        }
    }

    /// The next jobs for a handler thread, once a job waits and fewer than `concurrency` run: the
    /// oldest waiting job and, up to `batchSize(kind)` in all and within `concurrency`, more
    /// waiting jobs of its kind; empty when the worker stops taking jobs.
    func takeJobs(batchSize: (String) -> Int) -> [Job] {
        locked {
            while (inbox.isEmpty || executing.count >= concurrency) && phase == .running {
                monitor.wait(Self.jobWaiting)
            }
            guard phase == .running, !inbox.isEmpty else { return [] }
            var batch = [inbox.removeFirst()]
            let kindBatch = batchSize(batch[0].kind)
            let limit = min(kindBatch, concurrency - executing.count)
            var index = 0
            while batch.count < limit && index < inbox.count {
                if inbox[index].kind == batch[0].kind {
                    batch.append(inbox.remove(at: index))
                } else {
                    index += 1
                }
            }
            for job in batch { executing.insert(job.lease) }
            if kindBatch > 1 { for job in batch { executingInBatches.insert(job.lease) } }
            if !inbox.isEmpty && executing.count < concurrency { monitor.signal(Self.jobWaiting) }  // room for another thread
            if producerWants > 0 && freeSlots >= producerWants { monitor.signal(Self.slotFree) }  // a batch began: claim ahead
            return batch
        }
    }

    /// A handler thread's results for jobs it took.
    func record(_ results: [(lease: JobLease, outcome: JobOutcome)]) {
        locked {
            for (lease, outcome) in results {
                executing.remove(lease)
                executingInBatches.remove(lease)
                if abandoned.remove(lease) != nil { continue }
                if outcome == .completedInTransaction {
                    leased.remove(lease)  // written already, by the handler's transaction
                } else {
                    outcomes.append((lease, outcome))
                }
            }
            monitor.signal(Self.outcomeWaiting)
            if !inbox.isEmpty { monitor.signal(Self.jobWaiting) }  // claimed ahead: it may start now
            if producerWants > 0 && freeSlots >= producerWants { monitor.signal(Self.slotFree) }
            if phase != .running { monitor.broadcast(Self.control) }
        }
    }

    /// Jobs claimed but not started: released at once when shutdown begins.
    func releaseUnstarted() {
        locked {
            for job in inbox { outcomes.append((job.lease, .released)) }
            inbox.removeAll()
            monitor.signal(Self.outcomeWaiting)
        }
    }

    /// Waits until no handler runs a job, or until `deadline`; returns the ids still running.
    func waitForExecutingJobs(until deadline: ContinuousClock.Instant) -> Set<JobLease> {
        locked {
            while !executing.isEmpty && ContinuousClock.now < deadline && phase == .draining {
                monitor.wait(Self.control, timeout: deadline - ContinuousClock.now)
            }
            return executing
        }
    }

    /// Releases jobs whose handler did not finish in time; their late outcomes are dropped.
    func abandon(_ leases: Set<JobLease>) {
        locked {
            for lease in leases where executing.remove(lease) != nil {
                executingInBatches.remove(lease)
                abandoned.insert(lease)
                outcomes.append((lease, .released))
            }
            monitor.signal(Self.outcomeWaiting)
        }
    }

    /// The completer's next batch: waits up to `timeout` for outcomes. Returns the batch and
    /// whether the completer should exit after writing it.
    func takeOutcomes(timeout: Duration) -> (batch: [(lease: JobLease, outcome: JobOutcome)], finalBatch: Bool) {
        locked {
            if outcomes.isEmpty && phase != .stopping {
                monitor.wait(Self.outcomeWaiting, timeout: timeout)
            }
            let batch = outcomes
            outcomes.removeAll(keepingCapacity: true)
            return (batch, phase == .stopping)
        }
    }

    /// Outcomes written: those jobs are no longer leased by this worker.
    func written(_ leases: [JobLease]) {
        locked {
            for lease in leases { leased.remove(lease) }
        }
    }

    /// Jobs whose leases the heartbeat renews.
    var leases: [JobLease] { locked { Array(leased) } }

    /// True when this worker holds nothing: no job waiting, running, or unwritten.
    var isIdle: Bool { locked { inbox.isEmpty && executing.isEmpty && outcomes.isEmpty && leased.isEmpty } }

    func markProducerDone() {
        locked {
            producerDone = true
            monitor.broadcast(Self.control)
        }
    }

    /// Waits until the producer has stopped claiming (its last claim's jobs dispatched or
    /// released), until `deadline`, or until release is requested.
    func waitForProducer(until deadline: ContinuousClock.Instant) {
        locked {
            while !producerDone && ContinuousClock.now < deadline && phase < .releasing {
                monitor.wait(Self.control, timeout: deadline - ContinuousClock.now)
            }
        }
    }

    func markCompleterDone() {
        locked {
            completerDone = true
            monitor.broadcast(Self.control)
        }
    }

    func waitForCompleter() {
        locked {
            while !completerDone { monitor.wait(Self.control) }
        }
    }

    /// Sleeps up to `duration`, returning early when the phase reaches `phase`.
    func sleep(_ duration: Duration, unlessPhaseReaches target: Phase) {
        locked {
            let deadline = ContinuousClock.now + duration
            while phase < target && ContinuousClock.now < deadline {
                monitor.wait(Self.control, timeout: deadline - ContinuousClock.now)
            }
        }
    }
}
