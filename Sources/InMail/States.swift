import Postgres

// The states and reasons the database and Swift share, each mirroring one SQL enum of
// sql/accounts or sql/outreach (a test compares their cases with the SQL labels).

/// Whether a sender account can send: the `account_status` SQL enum.
public enum AccountStatus: String, Sendable, PostgresEnum {
    case active
    /// Paused by an operator, or after the platform restricted the account.
    case paused
    /// A7: the card on file expired; its work waits.
    case paymentFailed = "payment_failed"
    /// A6: the subscription ended, for good.
    case cancelled
}

/// Where a reservation stands: the `reservation_state` SQL enum.
public enum ReservationState: String, Sendable, PostgresEnum {
    /// Holds a daily slot (and a credit) for a delivery that is not settled yet.
    case held
    /// The message was delivered.
    case spent
    /// Nothing was sent: the slot and credit came back.
    case released
}

/// Why an account cannot send now: the `send_refusal` SQL enum, as `reserve_send` answers.
public enum SendRefusal: String, Sendable, PostgresEnum {
    case accountPaused = "account_paused"
    case accountPaymentFailed = "account_payment_failed"  // A7
    case accountCancelled = "account_cancelled"  // A6
    case planCannotSendInMail = "plan_cannot_send_inmail"  // A1
    case outsideWorkingHours = "outside_working_hours"
    case tooSoonAfterLastSend = "too_soon_after_last_send"
    case dailyLimitReached = "daily_limit_reached"  // S6
    case freeInMailMonthlyLimit = "free_inmail_monthly_limit"
    case creditsAtReserve = "credits_at_reserve"  // S7, S8
    /// Another session holds the account (a claim that is under way, or a stopped one): try again in a moment.
    case accountBusy = "account_busy"
    /// A worker delivering through the gateway found the account bound to no gateway account
    /// (`sql/admin/connect_gateway_account.sql` binds it).
    case accountNotConnected = "account_not_connected"

    /// Which of the account's other waiting sends the same refusal holds back, as a filter on
    /// their args: credit InMails wait for credits while free ones go on (S8); free InMails wait
    /// for next month's cap; every other refusal holds back the whole account.
    var heldBack: [String: SendJobValue] {
        switch self {
        case .creditsAtReserve: [SendRequest.CodingKeys.usesCredit.rawValue: .bool(true)]
        case .freeInMailMonthlyLimit:
            [SendRequest.CodingKeys.channel.rawValue: .text(SendRequest.Channel.inmail.rawValue),
             SendRequest.CodingKeys.usesCredit.rawValue: .bool(false)]
        default: [:]
        }
    }
}

/// Where a contact stands in its campaign's sequence: the `contact_status` SQL enum.
public enum ContactStatus: String, Sendable, PostgresEnum {
    /// No message yet.
    case waiting
    /// The InMail went; awaiting a response.
    case sent
    /// R3: accepted; follow-ups go on.
    case accepted
    /// R5: declined; no follow-ups.
    case declined
    /// R4: a responder; the sequence stopped.
    case replied
    /// Every follow-up was sent.
    case finished
    /// Never written to, or stopped; the contact's reason says why.
    case skipped
    /// Could not be sent; the contact's reason says why.
    case failed
}

/// Where a campaign stands: the `campaign_status` SQL enum.
public enum CampaignStatus: String, Sendable, PostgresEnum {
    case draft, active, paused, completed, archived
}

/// A scalar value of a job's args, for filters on them.
enum SendJobValue: Encodable {
    case bool(Bool)
    case text(String)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .bool(let value): try container.encode(value)
        case .text(let value): try container.encode(value)
        }
    }
}

/// Where a message stands: the `message_state` SQL enum.
public enum MessageState: String, Sendable, PostgresEnum {
    /// Written before delivery; a retry finds it and delivers again under the same key.
    case sending
    /// Delivered, with the courier's receipt.
    case sent
}

/// An id that names nothing: "no campaign with id 7".
public struct UnknownID: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the id was meant to name, such as "campaign".
    public let kind: String
    public let id: Int64

    public init(_ kind: String, _ id: Int64) {
        self.kind = kind
        self.id = id
    }

    public var description: String { "no \(kind) with id \(id)" }
}

/// A text longer than its field allows: "step 0 body: 12000 characters; at most 10000".
public struct InputTooLong: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let length: Int
    public let limit: Int

    /// Throws when `text` has more than `limit` characters.
    static func check(_ text: String?, _ field: String, limit: Int) throws(InputTooLong) {
        guard let text, text.count > limit else { return }
        throw InputTooLong(field: field, length: text.count, limit: limit)
    }

    public var description: String { "\(field): \(length) characters; at most \(limit)" }
}
