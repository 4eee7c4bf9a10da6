import Foundation
import Postgres
import Queue
import Synchronization

/// Faults a worker injects into itself when the chaos run (`make chaos`) asks for them through
/// its environment. Never set in production.
enum WorkerFaults {
    /// `INMAILQ_FAULT_STOP_IN_CLAIM=1`: the worker stops itself (SIGSTOP) once, inside its first
    /// claim that admitted jobs, after their reservations and before the commit: a frozen VM or
    /// a worker paused mid-claim, holding its accounts' row locks.
    static func apply(to handlers: inout JobHandlers, environment: [String: String] = ProcessInfo.processInfo.environment) {
        if environment["INMAILQ_FAULT_STOP_IN_CLAIM"] == "1" {
            let once = StopOnce()
            handlers.wrapGuards { StopInsideClaim(inner: $0, once: once) }
        }
    }
}

/// Admits what `inner` admits, then stops the process the first time a claim admitted jobs.
private struct StopInsideClaim: ClaimGuard {
    let inner: any ClaimGuard
    let once: StopOnce

    func admit(_ jobs: [Job], on connection: Connection) throws -> [Int64: Date] {
        let deferred = try inner.admit(jobs, on: connection)
        if deferred.count < jobs.count && once.first() { raise(SIGSTOP) }
        return deferred
    }
}

private final class StopOnce: Sendable {
    private let done = Atomic<Bool>(false)

    /// True for the first caller only.
    func first() -> Bool { !done.exchange(true, ordering: .relaxed) }
}
