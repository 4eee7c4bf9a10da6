import Foundation
import Queue

/// One message to deliver from a sender account to a LinkedIn member.
public struct Delivery: Sendable, Equatable {
    /// Derived from (contact, step): a retry of the same delivery carries the same key, and the
    /// courier answers a known key with its first receipt instead of sending again.
    public var key: String
    public var accountID: Int64
    public var memberKey: String
    public var channel: SendRequest.Channel
    /// The InMail's subject; nil for a regular message.
    public var subject: String?
    public var body: String
    /// The lease of the job run delivering it, when a job does: a courier that sends across a
    /// wire checks it in the statement before the request, so a stale run sends nothing.
    public var lease: JobLease?

    public init(key: String, accountID: Int64, memberKey: String, channel: SendRequest.Channel, subject: String?, body: String,
                lease: JobLease? = nil) {
        self.key = key
        self.accountID = accountID
        self.memberKey = memberKey
        self.channel = channel
        self.subject = subject
        self.body = body
        self.lease = lease
    }
}

/// What the platform answered for a delivered message.
public struct Receipt: Sendable, Equatable {
    /// The platform's id of the message.
    public var id: String
    /// True when the key was known and this is the first delivery's receipt again.
    public var repeated: Bool
    /// The conversation it went into, where the platform has one (follow-ups go there too).
    public var chatID: String?

    public init(id: String, repeated: Bool, chatID: String? = nil) {
        self.id = id
        self.repeated = repeated
        self.chatID = chatID
    }
}

/// Why a delivery did not happen, in the classes that decide what happens next.
public enum CourierError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A passing failure (a timeout, a 5xx): try again later; the reservation is kept.
    case retryLater(reason: String)
    /// Too many requests from this account: the account waits `retryAfter`; nothing was sent.
    case rateLimited(retryAfter: Duration)
    /// The member cannot receive this message (not allowed InMail, gone): skip them; nothing spent.
    case recipientUnreachable(reason: String)
    /// The member opted out of InMail (S2): skip them; nothing spent.
    case optedOut
    /// The account is restricted or disconnected: the account is paused; nothing was sent.
    case accountProblem(reason: String)
    /// LinkedIn says the account has no InMail credits left (its count, when known): credit
    /// InMails stop on that account until credits arrive; nothing was sent (S8).
    case insufficientCredits(linkedInCredits: Int?)
    /// LinkedIn refuses another InMail to this member until the first is answered (S4): skip
    /// them; nothing spent.
    case cannotResendYet(reason: String)
    /// A response stopped the contact's sequence after the job began (R4, R5): nothing was
    /// sent; the job ends.
    case sequenceStopped(reason: String)

    public var description: String {
        switch self {
        case .retryLater(let reason): "temporary failure: \(reason)"
        case .rateLimited(let retryAfter): "rate limited for \(retryAfter.seconds) s"
        case .recipientUnreachable(let reason): "recipient unreachable: \(reason)"
        case .optedOut: "the member opted out of InMail (S2)"
        case .accountProblem(let reason): "account problem: \(reason)"
        case .insufficientCredits(let credits): "no InMail credits left on LinkedIn\(credits.map { " (it counts \($0))" } ?? "")"
        case .cannotResendYet(let reason): "cannot send another InMail to this member yet (S4): \(reason)"
        case .sequenceStopped(let reason): "the sequence stopped: \(reason)"
        }
    }
}

/// One person a search listed.
public struct SearchPerson: Sendable, Equatable {
    public var profileURL: String
    public var details: ContactDetails

    public init(profileURL: String, details: ContactDetails) {
        self.profileURL = profileURL
        self.details = details
    }
}

/// One page of search results, and where the next one starts (nil after the last).
public struct SearchPage: Sendable, Equatable {
    public var people: [SearchPerson]
    public var nextCursor: String?

    public init(people: [SearchPerson], nextCursor: String?) {
        self.people = people
        self.nextCursor = nextCursor
    }
}

/// Delivers messages to LinkedIn (through a gateway) or to a simulation of it, and reads
/// search results. Called from worker threads, one call at a time per thread.
public protocol Courier: Sendable {
    /// Delivers `delivery`, or returns the first receipt when its key was delivered before.
    func deliver(_ delivery: Delivery) throws(CourierError) -> Receipt

    /// Most deliveries one call of `deliver(_: [Delivery])` should carry. 1 (the default) for a
    /// courier whose requests go one at a time: each send job then runs on its own thread.
    var batchSize: Int { get }

    /// Delivers each of `deliveries` (their keys distinct) as `deliver(_:)` does; the answers
    /// come in their order. The default delivers them one after the other.
    func deliver(_ deliveries: [Delivery]) -> [Result<Receipt, CourierError>]

    /// The page of a people search (`url`, checked by `SearchURL`) that starts at `cursor`
    /// (nil for the first page).
    func search(_ url: String, cursor: String?) throws(CourierError) -> SearchPage
}

extension Courier {
    public var batchSize: Int { 1 }

    public func deliver(_ deliveries: [Delivery]) -> [Result<Receipt, CourierError>] {
        deliveries.map { delivery in Result { () throws(CourierError) in try deliver(delivery) } }
    }
}
