import Foundation

/// The gateway's API as inmailq uses it: Unipile's API version 1 (`/api/v1`), the reference
/// LinkedIn messaging gateway. Every path, form field, JSON field and error type the courier
/// relies on is named here and nowhere else, so following a change of the gateway's API is an
/// edit of this file. Source: the public reference at developer.unipile.com (v1).
///
/// Version 1 rather than 2: v1 starts a chat from the account with the product chosen per call
/// (`linkedin[api]`), which is what a sender account's plan decides; v2 needs an inbox id per
/// product looked up first. Both answer errors as RFC 7807 problem bodies.
public enum UnipileV1 {
    /// The header that carries the API key on every request.
    public static let apiKeyHeader = "X-API-KEY"

    /// `GET`: the connected accounts; answers 401 when the key is wrong (checked at start).
    public static let accountsPath = "/api/v1/accounts"
    /// `GET /api/v1/users/{identifier}?account_id=`: a LinkedIn profile by public identifier or
    /// provider id, seen from that account.
    public static func userPath(_ identifier: String) -> String { "/api/v1/users/\(escaped(identifier))" }
    /// `POST` (multipart): start a chat by sending its first message.
    public static let chatsPath = "/api/v1/chats"
    /// `POST` (multipart): send a message in an existing chat; `GET`: that chat's messages.
    public static func chatMessagesPath(_ chatID: String) -> String { "/api/v1/chats/\(escaped(chatID))/messages" }
    /// `GET ?account_id=`: the messages of every chat an attendee (provider id) is in.
    public static func attendeeMessagesPath(_ attendeeID: String) -> String {
        "/api/v1/chat_attendees/\(escaped(attendeeID))/messages"
    }
    /// `GET ?account_id=`: the account's InMail credits per product.
    public static let inmailBalancePath = "/api/v1/linkedin/inmail_balance"

    /// `POST` (JSON `request_url`, `source`, `name`, `headers: [{key, value}]`): register a
    /// webhook; `GET`: the registered ones. The webhooks' own payloads (`message_received` with
    /// `message_id`, `chat_id`, `account_id`, `account_info.user_id`, `sender.attendee_provider_id`,
    /// `message`; `{"AccountStatus": {account_id, message}}`) are read where they are stored and
    /// applied, in `sql/inbox/`.
    public static let webhooksPath = "/api/v1/webhooks"

    /// The body of `POST /api/v1/webhooks`.
    struct WebhookRequest: Encodable {
        struct Header: Encodable {
            var key: String
            var value: String
        }
        var request_url: String
        var source: String
        var name: String
        var format = "json"
        var headers: [Header]
    }

    /// `{"object": "WebhookCreated", "webhook_id": ...}` (201).
    struct WebhookCreated: Decodable {
        var webhook_id: String
    }

    /// `{"object": "WebhookList", "items": [{"id", "source", "request_url", "name", ...}], "cursor"}`.
    struct WebhookList: Decodable {
        struct Item: Decodable {
            var id: String
            var source: String?
            var request_url: String?
            var name: String?
        }
        var items: [Item]
    }

    /// Form fields of the start-chat and send-message calls.
    public enum Field {
        public static let accountID = "account_id"
        public static let text = "text"
        public static let attendeesIDs = "attendees_ids"
        public static let subject = "subject"
        /// `classic`, `sales_navigator` or `recruiter`: the product that starts the chat.
        public static let linkedInAPI = "linkedin[api]"
        /// `true`: start the chat with an InMail.
        public static let linkedInInMail = "linkedin[inmail]"
    }

    /// The LinkedIn product a chat is started with (`linkedin[api]`).
    public enum LinkedInAPI: String, Sendable, CaseIterable {
        case classic
        case salesNavigator = "sales_navigator"
        case recruiter
    }

    /// `{"object": "ChatStarted", "chat_id": ..., "message_id": ...}` (201).
    struct ChatStarted: Decodable {
        var chat_id: String?
        var message_id: String?
    }

    /// `{"object": "MessageSent", "message_id": ...}` (201).
    struct MessageSent: Decodable {
        var message_id: String?
    }

    /// `{"object": "UserProfile", "provider_id": ..., "network_distance": ...}`.
    struct UserProfile: Decodable {
        var provider_id: String
        var public_identifier: String?
        /// `FIRST_DEGREE`, `SECOND_DEGREE`, `THIRD_DEGREE` or `OUT_OF_NETWORK`.
        var network_distance: String?
    }

    /// `{"object": "MessageList", "items": [...], "cursor": ...}`.
    struct MessageList: Decodable {
        struct Item: Decodable {
            var id: String
            var chat_id: String?
            var text: String?
            /// 1 (or true) for a message the account itself sent.
            var is_sender: Bool?

            enum CodingKeys: String, CodingKey { case id, chat_id, text, is_sender }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                id = try container.decode(String.self, forKey: .id)
                chat_id = try container.decodeIfPresent(String.self, forKey: .chat_id)
                text = try container.decodeIfPresent(String.self, forKey: .text)
                if let number = try? container.decodeIfPresent(Int.self, forKey: .is_sender) {
                    is_sender = number != 0
                } else {
                    is_sender = try container.decodeIfPresent(Bool.self, forKey: .is_sender)
                }
            }
        }
        var items: [Item]
    }

    /// `{"object": "LinkedinInmailBalance", "premium": n|null, "recruiter": n|null, "sales_navigator": n|null}`.
    struct InMailBalance: Decodable {
        var premium: Double?
        var recruiter: Double?
        var sales_navigator: Double?
    }

    /// The RFC 7807 body of every error answer: `{"title", "detail", "type", "status"}`.
    struct Problem: Decodable {
        var type: String?
        var title: String?
        var detail: String?
        var status: Int?
    }

    /// What an error answer means for the sender, from its status and documented `type`.
    public static func classify(status: Int, type: String?) -> GatewayErrorClass {
        switch (status, type ?? "") {
        case (429, _), (_, "errors/too_many_requests"), (_, "errors/limit_exceeded"):
            return .tooManyRequests
        case (_, "errors/insufficient_credits"):
            return .insufficientCredits
        case (_, "errors/cannot_resend_yet"), (_, "errors/cannot_resend_within_24hrs"):
            return .cannotResendYet
        case (_, "errors/not_allowed_inmail"), (_, "errors/invalid_recipient"), (_, "errors/no_connection_with_recipient"),
             (_, "errors/blocked_recipient"), (_, "errors/user_unreachable"), (_, "errors/recipient_rejected"):
            return .recipientUnreachable
        case (401, "errors/missing_credentials"):
            return .invalidAPIKey
        case (401, _), (_, "errors/account_restricted"), (_, "errors/disconnected_account"), (_, "errors/disconnected_feature"),
             (_, "errors/feature_not_subscribed"), (_, "errors/subscription_required"), (_, "errors/action_required"),
             (_, "errors/invalid_account"), (_, "errors/wrong_account"):
            return .accountUnusable
        case (500..., _), (408, _):
            return .temporary
        default:
            return .unknown
        }
    }

    static func escaped(_ component: String) -> String {
        component.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? component
    }
}

/// The classes of gateway errors that decide what happens to a send.
public enum GatewayErrorClass: String, Sendable {
    /// 429: the account (or the gateway) takes no more requests for now; nothing was sent.
    case tooManyRequests
    /// 5xx, a timeout: passing; the request may have gone out.
    case temporary
    /// The account has no InMail credits left on LinkedIn.
    case insufficientCredits
    /// LinkedIn refuses another InMail to this member until the first is answered (S4).
    case cannotResendYet
    /// The member cannot be reached or does not take InMail.
    case recipientUnreachable
    /// The account is disconnected, restricted or lacks the product.
    case accountUnusable
    /// The API key is missing or wrong.
    case invalidAPIKey
    /// Anything else the gateway answered.
    case unknown
}
