import Foundation
import Postgres
import Queue

/// `credits.drill`: exercises an account's limits and credits end to end without delivering
/// anything. Its claim reserves like a real send (through `SendReservationGuard`); its run then
/// spends the reservation, or releases it when the args say the delivery fails
/// (`"fails": true`). Operators use it to rehearse an account's day; tests use it to race workers.
public enum CreditDrill {
    public static let kind = "credits.drill"

    struct Args: Decodable {
        let delivery_key: String
        let fails: Bool?
    }

    public static let handler: JobHandler = { job, context in
        let args = try job.args.decode(Args.self)
        let connection = try context.connection()
        return try connection.transaction { connection in
            guard let reservation = try SendReservation.find(deliveryKey: args.delivery_key, on: connection) else {
                return .cancelled(reason: "no live reservation for delivery \(args.delivery_key)")
            }
            switch reservation.state {
            case "held" where args.fails == true:
                try SendReservation.release(reservation.id, reason: "drill: delivery failed", on: connection)
                return .cancelled(reason: "delivery failed for good; reservation released")
            case "held":
                try SendReservation.spend(reservation.id, on: connection)
                return .completed
            case "spent":
                return .completed  // delivered by an earlier run that died before finishing the job
            default:
                return .cancelled(reason: "reservation was \(reservation.state)")
            }
        }
    }

    struct DrillFailure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

/// Registers every InMail job kind.
public enum InMailHandlers {
    /// Registers renewals, drills, and the send, follow-up and search jobs working through `courier`;
    /// with the sandbox courier, also the job that brings its simulated responses back; and the
    /// maintenance duty that releases reservations whose job ended without settling them.
    public static func register(into handlers: inout JobHandlers, courier: any Courier) {
        handlers.register(Renewals.kind, Renewals.handler)
        handlers.register(CreditDrill.kind, admittedBy: SendReservationGuard(), CreditDrill.handler)
        let send = Outreach.handler(courier: courier)
        handlers.register(Outreach.sendKind, admittedBy: SendReservationGuard(), send)
        handlers.register(Outreach.followUpKind, admittedBy: SendReservationGuard(), send)
        handlers.register(Searches.kind, Searches.handler(courier: courier))
        handlers.addMaintenance("release orphaned reservations", every: .seconds(60)) { connection in
            try connection.query("select release_orphaned_reservations() as n").first!.decode(Int.self, "n")
        }
        if courier is SandboxCourier {
            handlers.register(SandboxCourier.respondKind, SandboxCourier.respondHandler)
        }
    }
}
