import Foundation
import Postgres
import Queue

/// Registers every InMail job kind and maintenance duty with a worker.
public enum InMailHandlers {
    /// Every job kind `register` can add (the sandbox's only with the sandbox courier).
    public static let kinds = [
        Renewals.kind, CreditDrill.kind, Outreach.sendKind, Outreach.followUpKind, Searches.kind, Inbox.processKind,
        SandboxCourier.respondKind,
    ]

    /// Registers renewals, drills, the send, follow-up and search jobs working through `courier`,
    /// and the job applying the gateway's webhooks;
    /// with the sandbox courier, also the job that brings its simulated responses back; with the
    /// gateway courier, the duty that keeps credits in step with LinkedIn's count; and the
    /// maintenance duties that release reservations whose job ended without settling them and
    /// book expired credits; the one that folds the reports' counters; and, given an interval
    /// (the process exports metrics), the sampler of each account's day and credits.
    public static func register(into handlers: inout JobHandlers, courier: any Courier, metricsSampleInterval: Duration? = nil) {
        handlers.register(Renewals.kind, Renewals.handler)
        handlers.register(CreditDrill.kind, admittedBy: SendReservationGuard(), CreditDrill.handler)
        let send = Outreach.handler(courier: courier)
        let sendGuard = SendReservationGuard(requireGatewayAccount: courier is GatewayCourier)
        handlers.register(Outreach.sendKind, admittedBy: sendGuard, batchSize: courier.batchSize, send)
        handlers.register(Outreach.followUpKind, admittedBy: sendGuard, batchSize: courier.batchSize, send)
        handlers.register(Searches.kind, Searches.handler(courier: courier))
        handlers.register(Inbox.processKind, Inbox.handler)
        handlers.addMaintenance(OrphanedReservationRelease())
        handlers.addMaintenance(CreditExpiry())
        handlers.addMaintenance(ReportCounterCompaction())
        if let metricsSampleInterval { handlers.addMaintenance(AccountSampler(interval: metricsSampleInterval)) }
        if courier is SandboxCourier {
            handlers.register(SandboxCourier.respondKind, SandboxCourier.respondHandler)
        }
        if let gateway = courier as? GatewayCourier {
            handlers.addMaintenance(GatewayCreditSync(courier: gateway, interval: gateway.balanceInterval))
        }
    }
}

/// Releases reservations whose job ended without settling them (`release_orphaned_reservations`),
/// once a minute on the elected worker.
struct OrphanedReservationRelease: MaintenanceService {
    let name = "orphaned reservation release"
    let interval: Duration = .seconds(60)

    func runOnce(on connection: Connection) throws -> Int {
        try connection.queryOne("select release_orphaned_reservations() as n").decode(Int.self, "n")
    }
}

/// Folds the reports' counter rows, one per statement that changed messages, responses or
/// contacts, into one per key (`compact_report_counters`), once a minute on the elected worker.
struct ReportCounterCompaction: MaintenanceService {
    let name = "report counter compaction"
    let interval: Duration = .seconds(60)

    func runOnce(on connection: Connection) throws -> Int {
        try connection.queryOne("select compact_report_counters() as n").decode(Int.self, "n")
    }
}

/// Books credits that expired (A4) at their moment (`expire_due_credits`), once a minute on the
/// elected worker, so statements and reports never count them.
struct CreditExpiry: MaintenanceService {
    let name = "credit expiry"
    let interval: Duration = .seconds(60)

    func runOnce(on connection: Connection) throws -> Int {
        try connection.queryOne("select expire_due_credits() as n").decode(Int.self, "n")
    }
}
