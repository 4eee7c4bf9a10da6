import Foundation
import Metrics
import Postgres
import Queue

/// The domain's metrics, recorded through swift-metrics (see `QueueMetrics` for the queue's);
/// the backend keeps one series per name and labels, so a counter is named where it counts:
/// - `inmailq_reservations_refused_total{reason}`: sends a claim could not reserve, by the
///   `send_refusal` reason (daily_limit_reached, credits_at_reserve, outside_working_hours, ...).
/// - `inmailq_deliveries_total{outcome}`: what became of each attempt to deliver: `delivered`,
///   or the courier's refusal class (`retry_later`, `rate_limited`, `account_problem`, ...).
///
/// Sampled by the elected worker (`AccountSampler`), per account that is not cancelled, labelled
/// `account` and `agency`: `inmailq_account_inmails_today`, `inmailq_account_inmail_limit`,
/// `inmailq_account_messages_today`, `inmailq_account_message_limit` (today in the account's own
/// time zone, S6) and `inmailq_account_credits` (spendable now); and in all,
/// `inmailq_accounts{status}` and `inmailq_accounts_at_daily_limit`.
public enum InMailMetrics {
    static func refused(_ reason: SendRefusal) {
        Counter(label: "inmailq_reservations_refused_total", dimensions: [("reason", reason.rawValue)]).increment()
    }

    static func delivered() {
        Counter(label: "inmailq_deliveries_total", dimensions: [("outcome", "delivered")]).increment()
    }

    static func deliveryRefused(_ error: CourierError) {
        Counter(label: "inmailq_deliveries_total", dimensions: [("outcome", error.outcomeClass)]).increment()
    }
}

extension CourierError {
    /// The class of refusal, as a metric label.
    var outcomeClass: String {
        switch self {
        case .retryLater: "retry_later"
        case .rateLimited: "rate_limited"
        case .recipientUnreachable: "recipient_unreachable"
        case .optedOut: "opted_out"
        case .accountProblem: "account_problem"
        case .insufficientCredits: "insufficient_credits"
        case .cannotResendYet: "cannot_resend_yet"
        case .sequenceStopped: "sequence_stopped"
        }
    }
}

/// Samples every account's day and credits for metrics, on the elected worker only
/// (`account_metrics()`, one query).
public struct AccountSampler: MaintenanceService {
    public let name = "account sampler"
    public let interval: Duration
    let gauges = SampledGauges()

    public init(interval: Duration) {
        self.interval = interval
    }

    public func runOnce(on connection: Connection) throws -> Int {
        var samples: [(label: String, dimensions: [(String, String)], value: Double)] = []
        var byStatus: [String: Int] = [:]
        var atLimit = 0
        let rows = try connection.query(
            """
            select account_id, agency_id, status, inmails_today, inmail_limit, messages_today, message_limit, credits
            from account_metrics()
            """, prepared: true).rows
        for row in rows {
            let labels = [("account", String(try row.decode(Int64.self, "account_id"))),
                          ("agency", String(try row.decode(Int64.self, "agency_id")))]
            let inmails = try row.decode(Int.self, "inmails_today"), inmailLimit = try row.decode(Int.self, "inmail_limit")
            let messages = try row.decode(Int.self, "messages_today"), messageLimit = try row.decode(Int.self, "message_limit")
            samples += [
                ("inmailq_account_inmails_today", labels, Double(inmails)),
                ("inmailq_account_inmail_limit", labels, Double(inmailLimit)),
                ("inmailq_account_messages_today", labels, Double(messages)),
                ("inmailq_account_message_limit", labels, Double(messageLimit)),
                ("inmailq_account_credits", labels, Double(try row.decode(Int.self, "credits"))),
            ]
            byStatus[try row.decode(String.self, "status"), default: 0] += 1
            if inmailLimit > 0 && inmails >= inmailLimit { atLimit += 1 }
        }
        for status in ["active", "paused", "payment_failed"] {
            samples.append(("inmailq_accounts", [("status", status)], Double(byStatus[status] ?? 0)))
        }
        samples.append(("inmailq_accounts_at_daily_limit", [], Double(atLimit)))
        gauges.publish(samples)
        return 0
    }

    public func leadershipEnded() {
        gauges.clear()
    }
}
