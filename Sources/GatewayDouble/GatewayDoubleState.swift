import Foundation
import Synchronization

/// A fault the double can answer a request with.
public enum GatewayFault: String, Codable, Sendable, CaseIterable {
    /// 429 with `Retry-After`; nothing is sent.
    case tooManyRequests = "too_many_requests"
    /// 500 `errors/unexpected_error`; nothing is sent.
    case serverError = "server_error"
    /// The message is sent, then the answer comes after the client's timeout.
    case slowAnswer = "slow_answer"
    /// The message is sent, then the connection is closed without an answer.
    case dropAfterSend = "drop_after_send"
    /// 422 `errors/insufficient_credits`, whatever the account's credits.
    case insufficientCredits = "insufficient_credits"
    /// 422 `errors/cannot_resend_yet`.
    case cannotResendYet = "cannot_resend_yet"
    /// 422 `errors/not_allowed_inmail`.
    case notAllowedInMail = "not_allowed_inmail"
    /// 401 `errors/disconnected_account`.
    case disconnectedAccount = "disconnected_account"
    /// 422 `errors/unprocessable_entity`: an error no class covers.
    case unprocessable = "unprocessable_entity"

    /// Faults that only a sending call (start a chat, send a message) can get.
    var onlyOnSends: Bool { ![.tooManyRequests, .serverError, .slowAnswer].contains(self) }
}

/// How the double misbehaves: faults queued for the next sending calls, faults drawn at random
/// for every call, and a latency added to every answer.
public struct GatewayFaults: Codable, Sendable, Equatable {
    /// Taken one per sending call (start a chat, send a message), in order.
    public var next: [GatewayFault] = []
    /// Each call draws each fault with this probability (sending-only faults on sends only).
    public var rates: [String: Double] = [:]
    /// Added to every answer, in milliseconds.
    public var latencyMilliseconds: Int = 0
    /// `Retry-After` of a 429, in seconds.
    public var retryAfterSeconds: Int = 2
    /// How late a slow answer comes, in milliseconds.
    public var slowMilliseconds: Int = 3_000

    public init() {}

    enum CodingKeys: String, CodingKey {
        case next, rates, latencyMilliseconds = "latency_ms", retryAfterSeconds = "retry_after_seconds",
             slowMilliseconds = "slow_ms"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        next = try container.decodeIfPresent([GatewayFault].self, forKey: .next) ?? []
        rates = try container.decodeIfPresent([String: Double].self, forKey: .rates) ?? [:]
        latencyMilliseconds = try container.decodeIfPresent(Int.self, forKey: .latencyMilliseconds) ?? 0
        retryAfterSeconds = try container.decodeIfPresent(Int.self, forKey: .retryAfterSeconds) ?? 2
        slowMilliseconds = try container.decodeIfPresent(Int.self, forKey: .slowMilliseconds) ?? 3_000
    }
}

/// A LinkedIn account connected to the double: its InMail credits per product (nil: no such
/// product) and whether LinkedIn lets it act.
public struct DoubleAccount: Codable, Sendable, Equatable {
    public var premium: Int?
    public var salesNavigator: Int?
    public var recruiter: Int?
    /// `ok`, `disconnected` or `restricted`.
    public var status: String

    public init(premium: Int? = nil, salesNavigator: Int? = nil, recruiter: Int? = nil, status: String = "ok") {
        self.premium = premium
        self.salesNavigator = salesNavigator
        self.recruiter = recruiter
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case premium, salesNavigator = "sales_navigator", recruiter, status
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        premium = try container.decodeIfPresent(Int.self, forKey: .premium)
        salesNavigator = try container.decodeIfPresent(Int.self, forKey: .salesNavigator)
        recruiter = try container.decodeIfPresent(Int.self, forKey: .recruiter)
        status = try container.decodeIfPresent(String.self, forKey: .status) ?? "ok"
    }
}

/// A LinkedIn member as the double knows them.
public struct DoubleMember: Codable, Sendable, Equatable {
    /// Takes InMail without a credit.
    public var openProfile: Bool = false
    /// A 1st-degree connection of every account.
    public var firstDegree: Bool = false
    /// Takes no InMail at all.
    public var unreachable: Bool = false

    public init(openProfile: Bool = false, firstDegree: Bool = false, unreachable: Bool = false) {
        self.openProfile = openProfile
        self.firstDegree = firstDegree
        self.unreachable = unreachable
    }

    enum CodingKeys: String, CodingKey {
        case openProfile = "open_profile", firstDegree = "first_degree", unreachable
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        openProfile = try container.decodeIfPresent(Bool.self, forKey: .openProfile) ?? false
        firstDegree = try container.decodeIfPresent(Bool.self, forKey: .firstDegree) ?? false
        unreachable = try container.decodeIfPresent(Bool.self, forKey: .unreachable) ?? false
    }
}

/// A message the double accepted (sent on LinkedIn), kept for assertions.
public struct DoubleMessage: Codable, Sendable, Equatable {
    public var id: String
    public var chatID: String
    public var accountID: String
    public var attendeeID: String
    public var text: String
    public var subject: String?
    /// The product that started the chat (`linkedin[api]`), nil for messages in a chat.
    public var api: String?
    public var inmail: Bool
    /// Whether the client got its answer (false after a dropped or too slow answer).
    public var answered: Bool
    /// False for the member's own messages (a reply).
    public var isSender = true

    enum CodingKeys: String, CodingKey {
        case id, chatID = "chat_id", accountID = "account_id", attendeeID = "attendee_id", text, subject, api, inmail, answered,
             isSender = "is_sender"
    }
}

/// What the double holds: connected accounts, members, chats and every message it accepted.
final class GatewayDoubleState: Sendable {
    struct Chat {
        var accountID: String
        var attendeeID: String
        var messages: [Int]  // indices into `sent`
        var answered = false  // the member replied (S4: the account may InMail them again)
    }

    struct Contents {
        var accounts: [String: DoubleAccount] = [:]
        var members: [String: DoubleMember] = [:]  // by public identifier or lead id
        var chats: [String: Chat] = [:]
        var sent: [DoubleMessage] = []
        var faults = GatewayFaults()
        var requests: [String: Int] = [:]  // "METHOD path-shape status": count
        var random = SplitMix(seed: 1)
        var nextID = 1
    }

    let contents: Mutex<Contents>
    let defaultAccount: DoubleAccount

    init(defaultAccount: DoubleAccount, seed: UInt64) {
        self.defaultAccount = defaultAccount
        var contents = Contents()
        contents.random = SplitMix(seed: seed)
        self.contents = Mutex(contents)
    }

    func withContents<T>(_ body: (inout Contents) throws -> T) rethrows -> T {
        try contents.withLock { try body(&$0) }
    }
}

/// A small deterministic random source, so a seed replays the same faults.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}
