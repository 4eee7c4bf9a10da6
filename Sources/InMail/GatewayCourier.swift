import Foundation
import Gateway
import Logging
import Postgres
import Queue
import Synchronization

/// Delivers through a LinkedIn messaging gateway's HTTP API (`Gateway.GatewayClient`).
///
/// A first message starts a chat with the member, resolved once to the gateway's id and cached
/// in `gateway_members`: an InMail with its subject through the account plan's product
/// (`plans.gateway_api`), or a regular message to a 1st-degree connection (S3). Follow-ups go
/// into that chat. The chat and message ids are recorded with the message.
///
/// Exactly once across the wire: the gateway takes no idempotency key, so before a request that
/// may send a message goes out, the message's `posted_at` is committed. A later attempt at a
/// message with `posted_at` set (its worker died, the answer was lost or late) first lists the
/// chat's messages (or, before a chat is known, the messages with that member) and takes the
/// one it sent as the receipt; it sends again only when the gateway shows none. What remains is
/// the time between the gateway accepting a message and listing it: a retry in that window
/// (it comes a lease or a backoff later, seconds at least) would not see it. No client can close
/// that window without the gateway's help; it is as small as the gateway's listing is fresh.
public final class GatewayCourier: Courier {
    public let client: GatewayClient
    /// How often the elected worker compares each account's credits with LinkedIn's count.
    public let balanceInterval: Duration
    private let pool: ConnectionPool
    private let logger: Logger

    /// A courier sending through `client`, reading and recording with sessions of `pool`.
    public init(client: GatewayClient, pool: ConnectionPool, balanceInterval: Duration = .seconds(600),
                logger: Logger = Logger(label: "inmailq.gateway")) {
        self.client = client
        self.balanceInterval = balanceInterval
        self.pool = pool
        self.logger = logger
    }

    private struct Context {
        var gatewayAccount: String?
        var api: UnipileV1.LinkedInAPI
        var message: Int64
        var step: Int
        var posted: Bool
        var chatID: String?
        var providerID: String?
    }

    public func deliver(_ delivery: Delivery) throws(CourierError) -> Receipt {
        let context = try database("read the message") { connection in
            guard let row = try connection.query(
                """
                select a.gateway_account_id, p.gateway_api, m.id, m.step, m.posted_at is not null as posted,
                       coalesce(m.chat_id, (select f.chat_id from messages f where f.contact_id = m.contact_id and f.step = 0)) as chat_id,
                       gm.provider_id
                from messages m
                join sender_accounts a on a.id = m.account_id
                join plans p on p.code = a.plan_code
                left join gateway_members gm on gm.gateway_account_id = a.gateway_account_id and gm.member_key = m.member_key
                where m.delivery_key = \(delivery.key)
                """, prepared: true).rows.first
            else { return nil as Context? }
            return Context(
                gatewayAccount: try row.decode(String?.self, "gateway_account_id"),
                api: UnipileV1.LinkedInAPI(rawValue: try row.decode(String.self, "gateway_api")) ?? .classic,
                message: try row.decode(Int64.self, "id"), step: try row.decode(Int.self, "step"),
                posted: try row.decode(Bool.self, "posted"), chatID: try row.decode(String?.self, "chat_id"),
                providerID: try row.decode(String?.self, "provider_id"))
        }
        guard let context else { throw .retryLater(reason: "no message is being sent under \(delivery.key)") }
        guard let account = context.gatewayAccount else {
            throw .accountProblem(reason: "sender account \(delivery.accountID) is not connected to a gateway account")
        }
        let startsChat = context.step == 0 || context.chatID == nil
        var providerID = context.providerID
        if providerID == nil && (startsChat || context.posted) {
            providerID = try resolve(delivery.memberKey, account: account)
        }
        // A follow-up's chat is listed once, for both checks below.
        var followUpChat: (id: String, messages: [GatewayMessage])?
        if !startsChat, let chatID = context.chatID {
            do {
                followUpChat = (chatID, try client.messages(inChat: chatID))
            } catch {
                // Not knowing is no licence to send (again).
                throw .retryLater(reason: "could not list chat \(chatID) before the follow-up \(delivery.key): \(error)")
            }
        }
        if context.posted,
           let sent = try alreadySent(delivery, account: account, chatID: context.chatID, providerID: providerID, listed: followUpChat?.messages) {
            logger.info("delivery found at the gateway, not sent again", metadata: [
                "delivery_key": "\(delivery.key)", "message_id": "\(sent.id)",
            ])
            return Receipt(id: sent.id, repeated: true, chatID: sent.chatID ?? context.chatID)
        }
        if let followUpChat {
            try requireChatProcessed(followUpChat.id, listed: followUpChat.messages)
        }
        // In the statement right before the request: a run whose job was rescued meanwhile (its
        // lease taken) marks and sends nothing; the run holding the job asks the gateway first.
        // The contact is checked again here: a response recorded since the job began (R4, R5,
        // or the member's reply to another campaign) stops the message.
        let posting = try database("record that the message is being posted") { connection in
            let row = try connection.queryOne(
                """
                with target as (
                    select m.id, c.status as contact_status,
                           c.status = (case when m.step = 0 then 'waiting' else 'accepted' end)::contact_status as goes_on
                    from messages m join contacts c on c.id = m.contact_id
                    where m.id = \(context.message)
                ), posted as (
                    update messages set posted_at = now()
                    where id = (select id from target where goes_on)
                      and (\(delivery.lease?.id)::bigint is null or queue_holds_lease(\(delivery.lease?.id), \(delivery.lease?.token)))
                    returning id
                )
                select (select count(*) from posted) = 1 as posted, (select goes_on from target) as goes_on,
                       (select contact_status::text from target) as contact_status
                """, prepared: true)
            return (posted: try row.decode(Bool.self, "posted"), goesOn: try row.decode(Bool?.self, "goes_on") ?? false,
                    contactStatus: try row.decode(String?.self, "contact_status") ?? "gone")
        }
        guard posting.goesOn else {
            throw .sequenceStopped(reason: "contact is \(posting.contactStatus) since the job began: nothing sent")
        }
        guard posting.posted else { throw .retryLater(reason: "this run no longer holds job \(delivery.lease?.id ?? 0): nothing sent") }
        do throws(GatewayError) {
            let sent: GatewaySent
            if startsChat {
                sent = try client.startChat(
                    accountID: account, attendee: providerID ?? "", text: delivery.body, subject: delivery.subject, api: context.api,
                    inmail: delivery.channel == .inmail)
            } else {
                sent = try client.sendMessage(chatID: context.chatID ?? "", text: delivery.body)
            }
            return Receipt(id: sent.messageID, repeated: false, chatID: sent.chatID)
        } catch {
            throw courierError(error, account: account, api: context.api)
        }
    }

    /// The gateway's id of a member, from the cache or looked up once and cached.
    private func resolve(_ memberKey: String, account: String) throws(CourierError) -> String {
        let identifier = String(memberKey.drop { $0 != ":" }.dropFirst())
        let member: GatewayMember
        do {
            member = try client.member(identifier, accountID: account)
        } catch {
            if case .answered(404, _, _, _, _) = error {
                throw .recipientUnreachable(reason: "the gateway finds no LinkedIn profile \(identifier): \(error)")
            }
            throw courierError(error, account: account, api: nil)
        }
        try database("cache the member") { connection in
            try connection.execute(
                """
                insert into gateway_members (gateway_account_id, member_key, provider_id, first_degree)
                values (\(account), \(memberKey), \(member.providerID), \(member.firstDegree))
                on conflict (gateway_account_id, member_key)
                do update set provider_id = excluded.provider_id, first_degree = excluded.first_degree, resolved_at = now()
                """, prepared: true)
        }
        return member.providerID
    }

    /// Right before a follow-up: the member's messages the gateway lists in the chat that
    /// inmailq has not processed yet (a webhook late, lost, or waiting for its job) may stop the
    /// sequence (R4). Any not in the inbox are stored there, as their webhook would have been
    /// (a later webhook is then a replay), and the follow-up waits until they are processed.
    /// What remains is a member writing after this listing and before the follow-up reaches
    /// the gateway: one request's time.
    private func requireChatProcessed(_ chatID: String, listed: [GatewayMessage]) throws(CourierError) {
        let fromMember = listed.filter { !$0.isSender }
        guard !fromMember.isEmpty else { return }
        let unprocessed = try database("compare chat \(chatID) with the inbox") { connection in
            let keys = fromMember.map { "message:\($0.id)" }
            let processed = Set(try connection.query(
                "select event_key from gateway_inbox where event_key = any(\(keys)::text[]) and state <> 'received'",
                prepared: true).rows.map { try $0.decode(String.self, "event_key") })
            let waiting = fromMember.filter { !processed.contains("message:\($0.id)") }
            if !waiting.isEmpty {
                let payloads = try waiting.map { message in
                    try JSONText(encoding: ListedMessageEvent(message_id: message.id, chat_id: chatID, message: message.text))
                }
                try connection.transaction { try Inbox.receive(payloads, on: $0) }
            }
            return waiting.count
        }
        if unprocessed > 0 {
            throw .retryLater(reason: "the member wrote in chat \(chatID) (\(unprocessed) message(s) not processed yet): the follow-up waits")
        }
    }

    /// A member's message found by listing a chat, stored as the gateway's webhook would carry it.
    private struct ListedMessageEvent: Encodable {
        var event = "message_received"
        let message_id: String
        let chat_id: String
        let message: String
        var is_sender = false
        var found_by = "listing the chat before a follow-up"
    }

    /// The message as the gateway lists it, if a request that may have sent it did; `listed`
    /// is its chat's messages when already read.
    private func alreadySent(_ delivery: Delivery, account: String, chatID: String?, providerID: String?,
                             listed known: [GatewayMessage]?) throws(CourierError) -> GatewayMessage?
    {
        let listed: [GatewayMessage]
        do {
            if let known {
                listed = known
            } else if let chatID {
                listed = try client.messages(inChat: chatID)
            } else if let providerID {
                listed = try client.messages(withAttendee: providerID, accountID: account)
            } else {
                return nil
            }
        } catch {
            // Not knowing is no licence to send again.
            throw .retryLater(reason: "could not ask the gateway whether \(delivery.key) went out: \(error)")
        }
        let body = delivery.body.trimmingCharacters(in: .whitespacesAndNewlines)
        return listed.first { $0.isSender && $0.text.trimmingCharacters(in: .whitespacesAndNewlines) == body }
    }

    /// The courier's class of a gateway error.
    private func courierError(_ error: GatewayError, account: String, api: UnipileV1.LinkedInAPI?) -> CourierError {
        switch error.errorClass {
        case .tooManyRequests:
            if case .answered(_, _, _, _, let retryAfter?) = error { return .rateLimited(retryAfter: retryAfter) }
            return .rateLimited(retryAfter: .seconds(60))
        case .temporary, .unknown:
            return .retryLater(reason: error.description)
        case .invalidAPIKey:
            return .retryLater(reason: "the gateway refused the API key: \(error)")
        case .insufficientCredits:
            let credits = api.flatMap { api in (try? client.inmailBalance(accountID: account))?.credits(for: api) }
            return .insufficientCredits(linkedInCredits: credits)
        case .cannotResendYet:
            return .cannotResendYet(reason: error.description)
        case .recipientUnreachable:
            return .recipientUnreachable(reason: error.description)
        case .accountUnusable:
            return .accountProblem(reason: "gateway: \(error)")
        }
    }

    @discardableResult
    private func database<T>(_ what: String, _ body: (Connection) throws -> T) throws(CourierError) -> T {
        do {
            return try pool.withConnection(body)
        } catch {
            throw .retryLater(reason: "could not \(what): \(error)")
        }
    }

    /// Searches do not go through the gateway yet: the job fails with this reason.
    public func search(_ url: String, cursor: String?) throws(CourierError) -> SearchPage {
        throw .recipientUnreachable(reason: "searches through the gateway are not supported yet; import the people by CSV or links")
    }
}

/// Keeps each bound account's InMail credits in step with LinkedIn's count: every `interval`
/// (10 minutes unless told) on the elected worker, reads the balance from the gateway and books the difference as a
/// 'reconcile' ledger entry (`reconcile_credits`), logged as a warning. An account with a credit
/// InMail on the wire (posted, not yet recorded) waits for the next round, as does one whose
/// ledger moved while the gateway was asked.
public struct GatewayCreditSync: MaintenanceService {
    public let name = "gateway credit sync"
    public let interval: Duration
    public let courier: GatewayCourier

    public init(courier: GatewayCourier, interval: Duration = .seconds(600)) {
        self.courier = courier
        self.interval = interval
    }

    public func runOnce(on connection: Connection) throws -> Int {
        let accounts = try connection.query(
            """
            select a.id, a.gateway_account_id, p.gateway_api, credit_balance(a.id) + credit_held(a.id) as expected
            from sender_accounts a join plans p on p.code = a.plan_code
            where a.gateway_account_id is not null and a.status = 'active' and p.can_send_inmail
              and not credit_inmail_being_posted(a.id)
            order by a.id
            """).rows
        var corrected = 0
        for row in accounts {
            let account = try row.decode(Int64.self, "id")
            let api = UnipileV1.LinkedInAPI(rawValue: try row.decode(String.self, "gateway_api")) ?? .classic
            let linkedIn: Int?
            do {
                linkedIn = try courier.client.inmailBalance(accountID: try row.decode(String.self, "gateway_account_id")).credits(for: api)
            } catch {
                continue  // an unreachable or disconnected account is compared next round
            }
            guard let linkedIn else { continue }
            let expected = try row.decode(Int.self, "expected")
            guard linkedIn != expected else { continue }
            let change = try connection.queryOne(
                """
                -- Asked again when booking: a post may have begun since the read above.
                select case when credit_inmail_being_posted(\(account)) then null
                            else reconcile_credits(\(account), \(linkedIn), \(expected),
                                                   \("LinkedIn counts \(linkedIn) InMail credits, the ledger \(expected)"))
                       end as change
                """).decode(Int?.self, "change")
            if let change, change != 0 {
                corrected += 1
                Logger(label: "inmailq.gateway").warning("credits reconciled with LinkedIn", metadata: [
                    "account_id": "\(account)", "linkedin": "\(linkedIn)", "ledger": "\(expected)", "change": "\(change)",
                ])
            }
        }
        return corrected
    }
}

/// `--gateway-rps` for a whole fleet: request permits come from one token bucket in the
/// database (`gateway_take_requests`), fetched a few at a time per process, so all workers
/// together stay under the rate.
public final class SharedRequestPacer: RequestPacer {
    private let pool: ConnectionPool
    private let perSecond: Double
    private let batch: Int
    private let permits = Mutex<Int>(0)

    public init(pool: ConnectionPool, perSecond: Double) {
        self.pool = pool
        self.perSecond = perSecond
        batch = max(1, Int(perSecond / 20))
    }

    public func acquire() throws {
        while true {
            let granted = try permits.withLock { permits -> Bool in
                if permits == 0 {
                    permits = try pool.withConnection { connection in
                        try connection.queryOne(
                            "select gateway_take_requests(\(batch), \(perSecond)) as n", prepared: true
                        ).decode(Int.self, "n")
                    }
                }
                guard permits > 0 else { return false }
                permits -= 1
                return true
            }
            if granted { return }
            Thread.sleep(forTimeInterval: Double(batch) / perSecond)
        }
    }
}
