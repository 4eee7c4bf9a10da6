import Foundation
import Postgres
import Queue

/// What a job that sends from a sender account carries: which account, which delivery (its key
/// derives from contact and step, so a retry is the same delivery), and what it needs.
public struct SendRequest: Codable, Sendable, Equatable {
    /// How the message goes out: the `send_channel` SQL enum.
    public enum Channel: String, Codable, Sendable, PostgresEnum {
        /// An InMail: counts against the daily InMail limit (S6).
        case inmail
        /// A regular message (1st-degree connections, follow-ups): the daily message limit.
        case message
    }

    public var accountID: Int64
    public var deliveryKey: String
    public var channel: Channel
    /// False for free InMails to open profiles (S1) and for regular messages (S3).
    public var usesCredit: Bool

    public init(accountID: Int64, deliveryKey: String, channel: Channel, usesCredit: Bool) {
        self.accountID = accountID
        self.deliveryKey = deliveryKey
        self.channel = channel
        self.usesCredit = usesCredit && channel == .inmail
    }

    enum CodingKeys: String, CodingKey {
        case accountID = "account_id", deliveryKey = "delivery_key", channel, usesCredit = "uses_credit"
    }
}

/// Why an account cannot send now, and when to try again.
public struct Refusal: Sendable, Equatable {
    public let reason: SendRefusal
    /// Business time at which to try again; nil when never (a cancelled account).
    public let retryAt: Date?
}

/// The account-side reservation of a send: one daily slot and, for a credit InMail, one credit.
public enum SendReservation {
    /// Reserves in the caller's transaction. Returns the reservation id, or the refusal.
    /// The same delivery key returns its live reservation (held, or spent once delivered).
    public static func reserve(_ request: SendRequest, on connection: Connection) throws -> Result<Int64, RefusalError> {
        let row = try connection.queryOne(
            """
            select reservation_id, refusal, retry_at
            from reserve_send(\(request.accountID), \(request.deliveryKey), \(request.channel)::send_channel, \(request.usesCredit))
            """, prepared: true)
        if let reason = try row.decode(SendRefusal?.self, "refusal") {
            return .failure(RefusalError(refusal: Refusal(reason: reason, retryAt: try row.decode(Date?.self, "retry_at"))))
        }
        return .success(try row.decode(Int64.self, "reservation_id"))
    }

    /// Reserves for many deliveries in one round trip, in the order given (sort by account to
    /// lock accounts in a fixed order). Returns the refusals by delivery key; the others hold
    /// their reservation (or find it already spent).
    /// With `requireGatewayAccount`, an account bound to no gateway account is refused.
    public static func reserve(_ requests: [SendRequest], requireGatewayAccount: Bool = false, on connection: Connection) throws
        -> [String: Refusal]
    {
        guard !requests.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            select delivery_key, refusal, retry_at
            from reserve_sends(\(requests.map(\.accountID))::bigint[], \(requests.map(\.deliveryKey))::text[],
                               \(requests.map(\.channel))::send_channel[], \(requests.map(\.usesCredit))::boolean[],
                               \(requireGatewayAccount))
            where refusal is not null
            """, prepared: true).rows
        var refusals: [String: Refusal] = [:]
        for row in rows {
            refusals[try row.decode(String.self, "delivery_key")] = Refusal(
                reason: try row.decode(SendRefusal.self, "refusal"), retryAt: try row.decode(Date?.self, "retry_at"))
        }
        return refusals
    }

    /// The live (held or spent) reservation of a delivery and its state, if any. A released one
    /// no longer answers for its key.
    public static func find(deliveryKey: String, on connection: Connection) throws -> (id: Int64, state: ReservationState)? {
        try connection.query(
            "select id, state from reservations where delivery_key = \(deliveryKey) and state <> 'released'", prepared: true
        ).rows.first.map {
            (try $0.decode(Int64.self, "id"), try $0.decode(ReservationState.self, "state"))
        }
    }

    /// The message was delivered: the reservation becomes a spend.
    public static func spend(_ reservation: Int64, on connection: Connection) throws {
        try connection.execute("select spend_reservation(\(reservation))", prepared: true)
    }

    /// The delivery failed for good before anything was sent: slot and credit come back.
    public static func release(_ reservation: Int64, reason: String, on connection: Connection) throws {
        try connection.execute("select release_reservation(\(reservation), \(reason))", prepared: true)
    }

    /// R1: a response arrived; the spent credit comes back if within 90 days and under the cap.
    @discardableResult
    public static func creditBack(_ reservation: Int64, on connection: Connection) throws -> Bool {
        try connection.queryOne("select credit_back(\(reservation)) as back").decode(Bool.self, "back")
    }
}

/// A refusal carried as an error value.
public struct RefusalError: Error, Sendable, Equatable {
    public let refusal: Refusal
}

/// Admits send jobs in the claim's transaction only when their account can send now, reserving
/// the slot and credit there. A refused job, and every waiting job of its account that the same
/// refusal holds back, moves to the account's next possible moment in one statement
/// (`JobQueue.deferJobs`): it is not claimed again and again.
public struct SendReservationGuard: ClaimGuard {
    /// Refuse accounts bound to no gateway account (a worker delivering through the gateway).
    public var requireGatewayAccount: Bool

    public init(requireGatewayAccount: Bool = false) {
        self.requireGatewayAccount = requireGatewayAccount
    }

    public func admit(_ jobs: [Job], on connection: Connection) throws -> [Int64: Date] {
        // Accounts are locked in id order, so two claims never wait on each other in a cycle.
        let requests = try jobs.map { ($0, try $0.args.decode(SendRequest.self)) }
            .sorted { ($0.1.accountID, $0.0.id) < ($1.1.accountID, $1.0.id) }
        let refusals = try SendReservation.reserve(requests.map(\.1), requireGatewayAccount: requireGatewayAccount, on: connection)
        var deferred: [Int64: Date] = [:]
        var moved: Set<String> = []  // "account|kind|reason": waiting jobs already moved
        for (job, request) in requests {
            guard let refusal = refusals[request.deliveryKey] else { continue }
            InMailMetrics.refused(refusal.reason)
            let until = refusal.retryAt ?? Date.distantFuture
            deferred[job.id] = until
            guard moved.insert("\(request.accountID)|\(job.kind)|\(refusal.reason.rawValue)").inserted else { continue }
            try JobQueue.deferJobs(
                partition: String(request.accountID), kind: job.kind,
                argsContaining: try JSONText(encoding: refusal.reason.heldBack), until: until, on: connection)
        }
        return deferred
    }
}
