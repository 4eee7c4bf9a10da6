import Foundation
import Postgres

/// The kinds of response a message can get; what each means is the `response_kinds` table.
public enum ResponseKind: String, Sendable, CaseIterable, Codable {
    /// Accepted with LinkedIn's default message: not a responder; follow-ups go on (R3).
    case acceptedDefault = "accepted_default"
    /// Accepted with an edited message: a responder; the sequence stops (R4).
    case acceptedEdited = "accepted_edited"
    /// Declined: no follow-ups (R5).
    case declined
    /// A free-text reply: a responder; the sequence stops (R4).
    case reply
    /// Auto-reply "Interested": an acceptance (R2).
    case interested
    /// Auto-reply "Maybe later": an acceptance (R2).
    case maybeLater = "maybe_later"
    /// Auto-reply "Not interested": a decline (R2).
    case notInterested = "not_interested"
}

/// What recording a response did.
public struct RecordedResponse: Sendable, Equatable {
    /// The new response's id; nil when the same kind was already recorded for the message.
    public let responseID: Int64?
    /// `accepted`, `declined`, `replied`, or `duplicate`.
    public let outcome: String
    /// True when the message's credit came back (R1).
    public let creditedBack: Bool
    /// The contact's status afterwards.
    public let contactStatus: ContactStatus
}

/// Responses to sent messages, from LinkedIn (through a gateway's webhook, `inmailq responses
/// record`) or from the sandbox: one path for both.
public enum Responses {
    /// Records a response to message `message`: credit back (R1, R2), sequence rules (R3-R5).
    public static func record(message: Int64, kind: ResponseKind, text: String? = nil, on connection: Connection) throws -> RecordedResponse {
        let row = try connection.queryOne(
            "select * from record_response(\(message), \(kind.rawValue), \(text))")
        return RecordedResponse(
            responseID: try row.decode(Int64?.self, "response_id"), outcome: try row.decode(String.self, "outcome"),
            creditedBack: try row.decode(Bool.self, "credited_back"), contactStatus: try row.decode(ContactStatus.self, "contact_status"))
    }

    /// The id of the message delivered under `deliveryKey` (`contact:<id>:step:<n>`), if it was sent.
    public static func message(deliveryKey: String, on connection: Connection) throws -> Int64? {
        try connection.query("select id from messages where delivery_key = \(deliveryKey) and state = 'sent'")
            .first?.decode(Int64.self, "id")
    }
}
