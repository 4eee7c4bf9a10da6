import Foundation
import Postgres
import Queue

/// Monthly credit renewals (A3-A5): one job per account and billing cycle.
public enum Renewals {
    /// The job kind that renews one account's credits for one cycle.
    public static let kind = "credits.renew"

    struct Args: Codable {
        let account_id: Int64
        let cycle_start: String
    }

    /// Enqueues a renewal job for every cycle due on or before `date` (business date, UTC;
    /// default today) that is not renewed yet, the days a missed cron skipped included.
    /// Running it again enqueues nothing more. Returns how many jobs it enqueued.
    @discardableResult
    public static func schedule(on date: String? = nil, connection: Connection) throws -> Int {
        try connection.transaction { transaction in
            let due = try transaction.query(
                """
                select account_id, cycle_start::text as cycle_start
                from renewal_cycles_due(coalesce(\(date)::date, (clock_now() at time zone 'UTC')::date))
                """).rows.map { (try $0.decode(Int64.self, "account_id"), try $0.decode(String.self, "cycle_start")) }
            let jobs = try due.map { account, cycle in
                NewJob(
                    kind: kind, args: try JSONText(encoding: Args(account_id: account, cycle_start: cycle)),
                    maxAttempts: 10, uniqueKey: "renewal:\(account):\(cycle)", partitionKey: String(account))
            }
            return try JobQueue.enqueue(jobs, on: transaction).compactMap { $0 }.count
        }
    }

    /// Renews one account for one cycle; idempotent. Returns the credits granted.
    @discardableResult
    public static func renew(account: Int64, cycleStart: String, on connection: Connection) throws -> Int {
        try connection.queryOne("select renew_credits(\(account), \(cycleStart)::date) as granted").decode(Int.self, "granted")
    }

    /// The job handler for `credits.renew`.
    public static let handler: JobHandler = { job, context in
        let args = try job.args.decode(Args.self)
        let granted = try renew(account: args.account_id, cycleStart: args.cycle_start, on: context.connection())
        context.logger.info("credits renewed", metadata: [
            "account_id": "\(args.account_id)", "cycle_start": "\(args.cycle_start)", "granted": "\(granted)",
        ])
        return .completed
    }
}
