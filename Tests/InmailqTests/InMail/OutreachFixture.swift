import Foundation
import InMail
import Postgres
import Queue
import Synchronization

/// A courier that answers with scripted refusals first (per member key, in order), then
/// delivers through the sandbox. `.lostAnswer` delivers and then reports a timeout, as when a
/// worker dies after the platform sent the message. `.staleRun` first lets the job's lease
/// expire and the job be rescued while the delivery is under way (a paused worker), then
/// refuses with the error given or, with none, delivers.
final class ScriptedCourier: Courier, @unchecked Sendable {
    enum Step { case refuse(CourierError), lostAnswer, staleRun(CourierError?) }
    let sandbox: SandboxCourier
    let pool: ConnectionPool
    let script: Mutex<[String: [Step]]>

    init(pool: ConnectionPool, script: [String: [Step]] = [:]) {
        sandbox = SandboxCourier(pool: pool, world: { _ in .perfect })
        self.pool = pool
        self.script = Mutex(script)
    }

    func deliver(_ delivery: Delivery) throws(CourierError) -> Receipt {
        let step = script.withLock { script -> Step? in
            guard var steps = script[delivery.memberKey], !steps.isEmpty else { return nil }
            let first = steps.removeFirst()
            script[delivery.memberKey] = steps
            return first
        }
        switch step {
        case .refuse(let error)?: throw error
        case .lostAnswer?:
            _ = try sandbox.deliver(delivery)
            throw .retryLater(reason: "timeout after the platform accepted the message")
        case .staleRun(let error)?:
            do {
                try pool.withConnection { connection in
                    try connection.execute(
                        "update jobs set lease_expires_at = now() - interval '1 second' where unique_key = \(delivery.key)")
                    _ = try QueueMaintenance.rescueExpiredLeases(on: connection)
                }
            } catch {
                fatalError("the test could not rescue the job: \(error)")
            }
            if let error { throw error }
            return try sandbox.deliver(delivery)
        case nil: return try sandbox.deliver(delivery)
        }
    }

    func search(_ url: String, cursor: String?) throws(CourierError) -> SearchPage {
        try sandbox.search(url, cursor: cursor)
    }
}

/// A workspace with sender accounts and a campaign, and an in-process worker loop that runs
/// every due job (claim with reservations, handler, finish) until none is left. The sandbox is
/// perfect (no opt-outs, failures or responses): tests record responses themselves and script
/// the courier's refusals.
struct OutreachFixture {
    let db: TestDatabase
    let connection: Connection
    let accounts: AccountFixture
    let workspace: Int64
    let handlers: JobHandlers
    let context: JobContext

    init(courier: ((ConnectionPool) -> any Courier)? = nil) throws {
        db = try TestDatabase()
        connection = try db.connect()
        accounts = AccountFixture(connection: connection)
        workspace = try accounts.workspace()
        var handlers = JobHandlers()
        let pool = ConnectionPool(db.configuration, capacity: 4)
        let chosen = courier?(pool) ?? SandboxCourier(pool: pool, world: { _ in .perfect })
        InMailHandlers.register(into: &handlers, courier: chosen)
        self.handlers = handlers
        context = JobContext(workerID: "test", pool: pool)
    }

    /// A sender account of the workspace with its current cycle's credits.
    func sender(plan: String = "sales_navigator", dailyLimit: Int = 50) throws -> Int64 {
        let account = try accounts.account(plan: plan, workspace: workspace, dailyLimit: dailyLimit)
        try accounts.renewCurrentCycle(account)
        return account
    }

    /// A campaign with an InMail step and follow-ups after `followUpDelays` days, its pool `senders`.
    func campaign(
        _ name: String = "Campaign \(UInt32.random(in: 0...UInt32.max))", senders: [Int64], followUpDelays: [Int] = [3, 5],
        body: String = "Hello {{first_name|there}}, about {{company|your team}}."
    ) throws -> Int64 {
        let campaign = try Campaigns.create(workspace: workspace, name: name, on: connection)
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "A question for {{first_name|you}}", body: body, delayDays: nil, on: connection)
        for (index, days) in followUpDelays.enumerated() {
            try Campaigns.setStep(campaign: campaign, position: index + 1, subject: nil, body: "Follow-up \(index + 1)", delayDays: days, on: connection)
        }
        for sender in senders { try Campaigns.addSender(campaign: campaign, account: sender, on: connection) }
        return campaign
    }

    /// Adds members `names` (profile slugs) to the campaign; returns their contact ids in order.
    @discardableResult
    func contacts(_ campaign: Int64, _ names: [String], set assignments: SQL? = nil) throws -> [Int64] {
        let report = try Contacts.add(campaign: campaign, links: names.enumerated().map { ($0 + 1, "linkedin.com/in/\($1)") }, on: connection)
        precondition(report.added == names.count, "\(report)")
        let ids = try names.map { name in
            try connection.query("select id from contacts where campaign_id = \(campaign) and member_key = \("in:" + name)").first!.decode(Int64.self, "id")
        }
        if let assignments {
            try connection.execute("update contacts set \(assignments) where id = any(\(ids)::bigint[])")
        }
        return ids
    }

    /// Runs every job that is due now, as a worker does, until none is; returns the outcomes.
    @discardableResult
    func drain() throws -> [String: [JobOutcome]] {
        var outcomes: [String: [JobOutcome]] = [:]
        for _ in 0..<1_000 {
            try QueueMaintenance.promoteDueJobs(on: connection)
            let (admitted, claimed) = try JobQueue.claimAdmitted(
                kinds: handlers.kinds, guards: handlers.guards, limit: 50, owner: "test", lease: .seconds(60), on: connection)
            if claimed == 0 { return outcomes }
            var finished: [(lease: JobLease, outcome: JobOutcome)] = []
            for job in admitted {
                let outcome: JobOutcome
                do {
                    outcome = try handlers[job.kind]!(job, context)
                } catch {
                    outcome = .failed(error: "\(error)", retryIn: .seconds(1))
                }
                outcomes[job.kind, default: []].append(outcome)
                finished.append((job.lease, outcome))
            }
            try JobQueue.finish(finished, on: connection)
        }
        fatalError("drain did not settle")
    }

    /// Moves business time forward and runs what became due.
    @discardableResult
    func advance(_ interval: String) throws -> [String: [JobOutcome]] {
        try connection.execute("select clock_advance(\(interval)::interval)")
        return try drain()
    }

    func contact(_ id: Int64) throws -> (status: String, reason: String?) {
        let row = try connection.query("select status, reason from contact_progress where contact_id = \(id)").first!
        return (try row.decode(String.self, "status"), try row.decode(String?.self, "reason"))
    }

    func message(_ contact: Int64, step: Int = 0) throws -> Row? {
        try connection.query("select * from messages where contact_id = \(contact) and step = \(step)").first
    }

    /// Writes a regular message at `step` to `contact` by hand, as hand-typed SQL could: from
    /// `account` (the contact's sender when nil), under a reservation of its own, in one
    /// transaction. Raises what the database refuses, having written nothing.
    func writeMessageByHand(to contact: Int64, step: Int, from account: Int64? = nil, body: String) throws {
        try connection.transaction { connection in
            let sender = try account ?? connection.queryOne("select sender_account_id from contacts where id = \(contact)")
                .decode(Int64.self, "sender_account_id")
            let key = "by-hand:\(contact):\(step)"
            let reservation = try accounts.reserve(sender, key: key, channel: .message, credit: false).get()
            try connection.execute(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body,
                                      reservation_id)
                select id, campaign_id, \(sender), member_key, \(step)::smallint, 'message', false, \(key), \(body)::text, \(reservation)
                from contacts where id = \(contact)
                """)
        }
    }

    func respond(_ contact: Int64, step: Int = 0, _ kind: ResponseKind, text: String? = nil) throws -> RecordedResponse {
        let message = try self.message(contact, step: step)!.decode(Int64.self, "id")
        return try Responses.record(message: message, kind: kind, text: text, on: connection)
    }

    func count(_ sql: SQL) throws -> Int {
        try InmailqTests.count(sql, connection)
    }
}
