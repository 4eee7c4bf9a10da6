import Foundation
import Postgres
import Queue

/// The send and follow-up jobs: one message of a contact's sequence each, delivered exactly
/// once through a courier.
///
/// The claim has already reserved the account's daily slot and credit (`SendReservationGuard`).
/// A run then checks the contact and its campaign, renders the text (S5), writes the message
/// as `sending`, delivers it under its key (contact, step), and in one statement
/// (`record_deliveries`) marks it sent, spends the reservation, moves the contact on and
/// completes the job. A run that dies anywhere is retried: it finds the `sending` message and
/// delivers again under the same key, and the courier answers with the first receipt. Whatever
/// stops a delivery before anything was sent releases the reservation, so no slot or credit is
/// spent on it.
public enum Outreach {
    /// The job that sends a contact's first message (step 0): an InMail, or a regular message
    /// to a 1st-degree connection (S3). `enqueue_sends` creates these.
    public static let sendKind = "inmail.send"
    /// The job that sends follow-up n of an accepted contact (C3). `schedule_follow_up` creates these.
    public static let followUpKind = "inmail.follow_up"

    /// The args of a send or follow-up job, which SQL writes in one place (`send_job_args`).
    public struct Args: Codable, Sendable, Equatable {
        public var contactID: Int64
        /// 0 for the first message, 1-5 for follow-ups.
        public var step: Int
        /// The account it goes from and what it reserves; the claim's guard reads only this.
        public var request: SendRequest

        public init(contactID: Int64, step: Int, request: SendRequest) {
            self.contactID = contactID
            self.step = step
            self.request = request
        }

        enum CodingKeys: String, CodingKey {
            case contactID = "contact_id", step
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            contactID = try container.decode(Int64.self, forKey: .contactID)
            step = try container.decode(Int.self, forKey: .step)
            request = try SendRequest(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            try request.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(contactID, forKey: .contactID)
            try container.encode(step, forKey: .step)
        }
    }

    /// The handler for both kinds, delivering through `courier`, as many jobs at once as the
    /// courier takes deliveries (`Courier.batchSize`).
    public static func handler(courier: any Courier) -> BatchJobHandler {
        { jobs, context in try run(jobs, courier: courier, context: context) }
    }

    /// What a run does with its job, once the contact, the campaign and the reservation are read.
    private enum Plan {
        case done(JobOutcome)
        /// Deliver a message an earlier run wrote (it died mid-delivery).
        case deliver(Delivery, message: Int64)
        /// Write this new message as `sending`, then deliver it.
        case write(NewMessage)
    }

    private struct NewMessage {
        let contactID: Int64
        let campaignID: Int64
        let step: Int
        let request: SendRequest
        let memberKey: String
        let subject: String?
        let body: String
        let reservation: Int64

        /// What the courier is handed for this message, under the job's lease.
        func delivery(lease: JobLease) -> Delivery {
            Delivery(key: request.deliveryKey, accountID: request.accountID, memberKey: memberKey, channel: request.channel,
                     subject: subject, body: body, lease: lease)
        }
    }

    /// A job's delivery on its way: the job's index in the batch, its args, and its message.
    private struct Sending {
        let index: Int
        let args: Args
        let delivery: Delivery
        let message: Int64
    }

    /// Runs a batch of send or follow-up jobs: reads them in one query, writes their new
    /// messages in one statement, hands the deliveries to the courier together, and records
    /// what was delivered in one statement (`record_deliveries`). What concerns one job only (a
    /// refusal, a stop) is written for that job alone; a batched statement that fails is
    /// repeated job by job, so one job's error is that job's alone.
    static func run(_ jobs: [Job], courier: any Courier, context: JobContext) throws -> [Result<JobOutcome, any Error>] {
        var results = [Result<JobOutcome, any Error>?](repeating: nil, count: jobs.count)
        var decoded: [(index: Int, args: Args)] = []
        for (index, job) in jobs.enumerated() {
            do {
                decoded.append((index, try job.args.decode(Args.self)))
            } catch {
                results[index] = .failure(error)
            }
        }
        let connection = try context.connection()
        var sending: [Sending] = []
        var writes: [(index: Int, args: Args, message: NewMessage)] = []
        for (index, args, plan) in try prepare(decoded, jobs, on: connection) {
            switch plan {
            case .success(.done(let outcome)): results[index] = .success(outcome)
            case .success(.deliver(let delivery, let message)): sending.append(Sending(index: index, args: args, delivery: delivery, message: message))
            case .success(.write(let message)): writes.append((index, args, message))
            case .failure(let error): results[index] = .failure(error)
            }
        }
        for (position, written) in write(writes.map(\.message), on: connection).enumerated() {
            let (index, args, new) = writes[position]
            switch written {
            case .success(let message):
                sending.append(Sending(index: index, args: args, delivery: new.delivery(lease: jobs[index].lease), message: message))
            case .failure(let error): results[index] = .failure(error)
            }
        }
        context.releaseConnection()  // no session is held while the courier works
        var delivered: [(sending: Sending, receipt: Receipt)] = []
        for (entry, answer) in zip(sending, courier.deliver(sending.map(\.delivery))) {
            switch answer {
            case .success(let receipt):
                delivered.append((entry, receipt))
            case .failure(let error):
                let job = jobs[entry.index]
                InMailMetrics.deliveryRefused(error)
                context.logger.info("delivery refused", metadata: [
                    "delivery_key": "\(entry.delivery.key)", "account_id": "\(entry.delivery.accountID)", "reason": "\(error)",
                ])
                results[entry.index] = Result {
                    try context.connection().transaction { connection in
                        try JobQueue.requireLease(job.lease, on: connection)  // a stale run changes nothing
                        return try refused(error, job: job, args: entry.args, request: entry.args.request, on: connection)
                    }
                }
            }
        }
        if !delivered.isEmpty {
            for (position, recorded) in record(delivered.map { (jobs[$0.sending.index].lease, $0.sending.message, $0.receipt) },
                                               on: try context.connection()).enumerated() {
                let (entry, receipt) = delivered[position]
                results[entry.index] = recorded.map { .completedInTransaction }
                guard case .success = recorded else { continue }
                InMailMetrics.delivered()
                context.logger.debug("delivered", metadata: [
                    "delivery_key": "\(entry.delivery.key)", "account_id": "\(entry.delivery.accountID)", "receipt": "\(receipt.id)",
                    "repeated": "\(receipt.repeated)",
                ])
            }
        }
        return results.map { $0! }
    }

    /// Writes new messages as `sending` in one statement, or one by one when that fails; their ids
    /// or errors, in order. Committed without waiting for the WAL flush: losing these rows in a
    /// server crash only means the retry renders them again, same key; the durable commit that
    /// records their posting or delivery flushes them too.
    private static func write(_ messages: [NewMessage], on connection: Connection) -> [Result<Int64, any Error>] {
        func insert(_ messages: [NewMessage]) throws -> [Int64] {
            let rows = try connection.query(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key,
                                      subject, body, reservation_id, created_at)
                select m.contact_id, m.campaign_id, m.account_id, m.member_key, m.step, m.channel, m.uses_credit, m.delivery_key,
                       m.subject, m.body, m.reservation_id, (select clock_now())  -- read once, not per row as the default is
                from unnest(\(messages.map(\.contactID))::bigint[], \(messages.map(\.campaignID))::bigint[],
                            \(messages.map(\.request.accountID))::bigint[], \(messages.map(\.memberKey))::text[],
                            \(messages.map(\.step))::smallint[], \(messages.map(\.request.channel))::send_channel[],
                            \(messages.map(\.request.usesCredit))::boolean[], \(messages.map(\.request.deliveryKey))::text[],
                            \(messages.map(\.subject))::text[], \(messages.map(\.body))::text[], \(messages.map(\.reservation))::bigint[])
                     as m(contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, subject, body,
                          reservation_id),
                     (select set_config('synchronous_commit', 'off', true)) as commit_without_waiting_for_flush
                returning id, delivery_key
                """, prepared: true).rows
            var ids: [String: Int64] = [:]
            for row in rows { ids[try row.decode(String.self, "delivery_key")] = try row.decode(Int64.self, "id") }
            return messages.map { ids[$0.request.deliveryKey]! }
        }
        guard !messages.isEmpty else { return [] }
        if let ids = try? insert(messages) { return ids.map { .success($0) } }
        return messages.map { message in Result { try insert([message])[0] } }
    }

    /// Records deliveries and completes their jobs in one statement (`record_deliveries`), or one
    /// by one when that fails (a stale run's lease, a message an operator settled meanwhile);
    /// success or the error, in order.
    private static func record(_ deliveries: [(lease: JobLease, message: Int64, receipt: Receipt)], on connection: Connection)
        -> [Result<Void, any Error>]
    {
        func record(_ deliveries: [(lease: JobLease, message: Int64, receipt: Receipt)]) throws {
            try connection.execute(
                """
                select record_deliveries(\(deliveries.map(\.message))::bigint[], \(deliveries.map(\.receipt.id))::text[],
                                         \(deliveries.map(\.lease.id))::bigint[], \(deliveries.map(\.lease.token))::bigint[],
                                         \(deliveries.map(\.receipt.chatID))::text[])
                """, prepared: true)
        }
        if deliveries.count > 1, (try? record(deliveries)) != nil { return deliveries.map { _ in .success(()) } }
        return deliveries.map { delivery in Result { try record([delivery]) } }
    }

    /// Decides for each job whether and what to deliver, reading every job's contact, campaign,
    /// message and reservation in one query (`send_batch`, which takes no lock). A job that stops
    /// writes its stop alone (its reservation released).
    private static func prepare(_ batch: [(index: Int, args: Args)], _ jobs: [Job], on connection: Connection) throws
        -> [(Int, Args, Result<Plan, any Error>)]
    {
        guard !batch.isEmpty else { return [] }
        let requests = batch.map(\.args.request)
        let rows = try connection.query(
            """
            select * from send_batch(\(batch.map(\.args.contactID))::bigint[], \(batch.map(\.args.step))::integer[],
                                     \(requests.map(\.accountID))::bigint[], \(requests.map(\.deliveryKey))::text[])
            """, prepared: true).rows
        var found: [Int: Row] = [:]
        for row in rows { found[try row.decode(Int.self, "i") - 1] = row }
        return batch.enumerated().map { position, entry in
            let planned = Result { () throws -> Plan in
                guard let row = found[position] else { return .done(.cancelled(reason: "no contact with id \(entry.args.contactID)")) }
                return try plan(entry.args, row: row, lease: jobs[entry.index].lease, on: connection)
            }
            return (entry.index, entry.args, planned)
        }
    }

    /// One job's plan from its row of `prepare`'s query.
    private static func plan(_ args: Args, row: Row, lease: JobLease, on connection: Connection) throws -> Plan {
        let request = args.request
        if try row.decode(MessageState?.self, "message_state") == .sent {
            return .done(.completed)  // an earlier run delivered and recorded it, then died
        }
        guard let reservation = try row.decode(Int64?.self, "reservation_id"),
              try row.decode(ReservationState?.self, "reservation_state") == .held
        else {
            // Released since the claim (a cancelled subscription): the next claim reserves again, or waits.
            return .done(.snoozed(delay: .seconds(60)))
        }
        let memberKey = try row.decode(String.self, "member_key")
        // Nothing will be sent: the slot and credit come back; the contact stops when told.
        func stop(_ reason: String, contactStatus: ContactStatus?, outcome: JobOutcome) throws -> Plan {
            try connection.transaction { connection in
                try JobQueue.requireLease(lease, on: connection)  // a stale run gives nothing back
                try SendReservation.release(reservation, reason: reason, on: connection)
                if let contactStatus {
                    try connection.execute(
                        """
                        update contacts set status = \(contactStatus), reason = \(reason), last_event_at = clock_now()
                        where id = \(args.contactID)
                        """)
                }
            }
            return .done(outcome)
        }
        if let pending = try row.decode(Int64?.self, "message_id") {
            // A run that died mid-delivery: finish that delivery, with the text it rendered.
            try connection.execute("update messages set reservation_id = \(reservation) where id = \(pending)")
            return .deliver(
                Delivery(
                    key: request.deliveryKey, accountID: request.accountID, memberKey: memberKey, channel: request.channel,
                    subject: try row.decode(String?.self, "subject"), body: try row.decode(String.self, "body"), lease: lease),
                message: pending)
        }
        let status = try row.decode(ContactStatus.self, "status")
        let expected: ContactStatus = args.step == 0 ? .waiting : .accepted
        guard status == expected else {
            // R4, R5: a response stopped the sequence (or another campaign's reply did).
            let reason = "contact is \(status.rawValue)"
            return try stop(reason, contactStatus: nil, outcome: .cancelled(reason: reason))
        }
        // A campaign paused, or an account paused or with an expired card since the claim
        // reserved (A7): the work waits as a refused send does, its slot and credit given back.
        let campaignStatus = try row.decode(CampaignStatus.self, "campaign_status")
        let accountStatus = try row.decode(AccountStatus?.self, "account_status") ?? .active
        if campaignStatus == .completed || campaignStatus == .archived {
            return try stop("campaign is \(campaignStatus.rawValue)", contactStatus: .skipped, outcome: .completed)
        }
        if campaignStatus != .active || accountStatus != .active {
            let reason = campaignStatus != .active ? "campaign \(campaignStatus.rawValue)" : "account \(accountStatus.rawValue)"
            return try stop(reason, contactStatus: nil, outcome: .deferred(until: try row.decode(Date.self, "inactive_until")))
        }
        if request.channel == .inmail, try row.decode(Bool.self, "inmail_awaits_response") {
            return try stop(
                "an earlier InMail from sender \(request.accountID) awaits this member's response (S4)", contactStatus: .skipped,
                outcome: .completed)
        }
        guard let bodyTemplate = try row.decode(String?.self, "template_body") else {
            return try stop("campaign has no step \(args.step)", contactStatus: .failed, outcome: .cancelled(reason: "campaign has no step \(args.step)"))
        }
        var values: [String: String] = [:]
        for field in ["first_name", "last_name", "company", "title"] {
            values[field] = try row.decode(String?.self, field)
        }
        for (field, value) in try customFields(try row.decode(String.self, "custom_fields")) where values[field] == nil {
            values[field] = value
        }
        let subject: String?
        let body: String
        let part = args.step == 0 ? "step 0 (InMail)" : "step \(args.step) (follow-up)"
        do {
            // A regular message (S3, follow-ups) has no subject.
            let subjectTemplate = request.channel == .inmail ? try row.decode(String?.self, "template_subject") : nil
            subject = try subjectTemplate.map {
                try MessageTemplate($0).render(values, limit: try row.decode(Int.self, "subject_limit"), part: "\(part) subject")
            }
            body = try MessageTemplate(bodyTemplate).render(values, limit: try row.decode(Int.self, "body_limit"), part: "\(part) body")
        } catch let error as TemplateError {
            return try stop(error.description, contactStatus: .failed, outcome: .cancelled(reason: error.description))  // S5
        }
        return .write(
            NewMessage(
                contactID: args.contactID, campaignID: try row.decode(Int64.self, "campaign_id"), step: args.step, request: request,
                memberKey: memberKey, subject: subject, body: body, reservation: reservation))
    }

    /// What a refused delivery leads to. Nothing was sent, so the reservation comes back unless
    /// the delivery is to be tried again soon.
    private static func refused(_ error: CourierError, job: Job, args: Args, request: SendRequest, on connection: Connection) throws -> JobOutcome {
        let times = try connection.queryOne("select clock_now() as now, clock_now() + inactive_account_retry_after() as inactive_until")
        let now = try times.decode(Date.self, "now")
        func giveUp(_ reason: String) throws {
            if let reservation = try SendReservation.find(deliveryKey: request.deliveryKey, on: connection), reservation.state == .held {
                try connection.execute("delete from messages where delivery_key = \(request.deliveryKey) and state = 'sending'")
                try SendReservation.release(reservation.id, reason: reason, on: connection)
            }
        }
        func stopContact(_ status: ContactStatus, _ reason: String) throws {
            try connection.execute(
                "update contacts set status = \(status), reason = \(reason), last_event_at = clock_now() where id = \(args.contactID)")
        }
        switch error {
        case .retryLater(let reason):
            guard job.attempt < job.maxAttempts else {
                try giveUp(reason)
                try stopContact(.failed, "delivery kept failing: \(reason)")
                return .cancelled(reason: "delivery kept failing: \(reason)")
            }
            return .failed(error: error.description, retryIn: .seconds(min(3600, 30 * Double(1 << min(job.attempt, 7)))))
        case .rateLimited(let retryAfter):
            try giveUp(error.description)
            let until = now.addingTimeInterval(retryAfter.seconds)
            try connection.execute(
                """
                update sender_accounts set next_send_at = greatest(coalesce(next_send_at, \(until)), \(until))
                where id = \(request.accountID)
                """)
            return .deferred(until: until)
        case .optedOut:
            try giveUp(error.description)
            try connection.execute("update contacts set opted_out = true where id = \(args.contactID)")
            try stopContact(.skipped, "opted out of InMail (S2)")
            return .completed
        case .recipientUnreachable:
            try giveUp(error.description)
            try stopContact(.skipped, "recipient cannot receive it")  // the courier's details are in the log
            return .completed
        case .accountProblem(let reason):
            try giveUp(error.description)
            try connection.execute("select set_account_status(\(request.accountID), 'paused', \(reason))")  // an operator resumes it
            return .deferred(until: try times.decode(Date.self, "inactive_until"))
        case .sequenceStopped(let reason):
            try giveUp(error.description)  // the response that stopped it has set the contact
            return .cancelled(reason: reason)
        case .cannotResendYet:
            try giveUp(error.description)
            try stopContact(.skipped, "LinkedIn: an earlier InMail from this sender awaits the member's answer (S4)")
            return .completed
        case .insufficientCredits(let linkedInCredits):
            // Credit InMails stop on this account now: the ledger takes LinkedIn's count (none when
            // unknown; the balance duty corrects it later), so the next claim refuses them until
            // credits arrive (S8), while free InMails and messages go on.
            try giveUp(error.description)
            try connection.execute(
                """
                select reconcile_credits(\(request.accountID), \(linkedInCredits ?? 0),
                                         credit_balance(\(request.accountID)) + credit_held(\(request.accountID)),
                                         'LinkedIn reported no InMail credits left on a send')
                """)
            guard request.usesCredit else {
                // LinkedIn wants a credit for what was to go free: the profile is no longer open.
                try stopContact(.skipped, "LinkedIn asked a credit for a free InMail: the profile is no longer open (S1)")
                return .completed
            }
            return .deferred(until: now)
        }
    }

    /// A contact's custom fields as text values (numbers and booleans written out).
    static func customFields(_ json: String) throws -> [String: String] {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        var fields: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: fields[key] = text
            case is NSNull: continue
            case let number as NSNumber: fields[key] = number.stringValue
            default: fields[key] = "\(value)"
            }
        }
        return fields
    }
}
