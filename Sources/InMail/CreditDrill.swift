import Foundation
import Postgres
import Queue

/// `credits.drill`: exercises an account's limits and credits end to end without delivering
/// anything. Its claim reserves like a real send (through `SendReservationGuard`); its run then
/// spends the reservation, or releases it when the args say the delivery fails
/// (`"fails": true`). Operators use it to rehearse an account's day; tests use it to race workers.
public enum CreditDrill {
    public static let kind = "credits.drill"

    /// A drill job's args: the send it rehearses, and whether its delivery fails.
    public struct Args: Codable, Sendable, Equatable {
        public var request: SendRequest
        public var fails: Bool

        public init(request: SendRequest, fails: Bool = false) {
            self.request = request
            self.fails = fails
        }

        enum CodingKeys: String, CodingKey { case fails }

        public init(from decoder: any Decoder) throws {
            request = try SendRequest(from: decoder)
            fails = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Bool.self, forKey: .fails) ?? false
        }

        public func encode(to encoder: any Encoder) throws {
            try request.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(fails, forKey: .fails)
        }
    }

    /// A drill job for `args`, on its account's partition.
    public static func job(_ args: Args) throws -> NewJob {
        NewJob(kind: kind, args: try JSONText(encoding: args), partitionKey: String(args.request.accountID))
    }

    public static let handler: JobHandler = { job, context in
        let args = try job.args.decode(Args.self)
        let key = args.request.deliveryKey
        return try context.connection().transaction { connection in
            guard let reservation = try SendReservation.find(deliveryKey: key, on: connection) else {
                return .cancelled(reason: "no live reservation for delivery \(key)")
            }
            switch reservation.state {
            case .held where args.fails:
                try SendReservation.release(reservation.id, reason: "drill: delivery failed", on: connection)
                return .cancelled(reason: "delivery failed for good; reservation released")
            case .held:
                try SendReservation.spend(reservation.id, on: connection)
                return .completed
            case .spent:
                return .completed  // delivered by an earlier run that died before finishing the job
            case .released:
                return .cancelled(reason: "reservation was released")
            }
        }
    }
}
