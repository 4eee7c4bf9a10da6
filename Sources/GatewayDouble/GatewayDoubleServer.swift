import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A test double of the LinkedIn gateway's HTTP API (Unipile API v1, as its public reference
/// documents it): the subset inmailq uses, at the same paths, with the same form fields, JSON
/// fields, status codes and RFC 7807 error bodies, running as a real local HTTP server. It is a
/// stand-in for the external service, written from its documentation, never a mock of
/// inmailq's own code.
///
/// It keeps the accounts' InMail credits per product and every message it accepted, refuses
/// what LinkedIn refuses (no credits, a second unanswered InMail, an unreachable member, a
/// disconnected account), and injects faults on demand (`GatewayFaults`). Beside the API it
/// answers a control API under `/_double/` (no key) to set accounts, members and faults and to
/// read what it received:
///
///     GET /_double/messages             every accepted message, in order (JSON array)
///     GET /_double/requests             request counts by "METHOD path status"
///     PUT /_double/accounts/{id}        {"premium": 10, "sales_navigator": null, "recruiter": null, "status": "ok"}
///     PUT /_double/members/{identifier} {"open_profile": false, "first_degree": false, "unreachable": false}
///     PUT /_double/faults               {"next": ["drop_after_send"], "rates": {"server_error": 0.05}, "latency_ms": 0,
///                                        "retry_after_seconds": 2, "slow_ms": 3000}
///     POST /_double/chats/{id}/reply    {"text": "..."}: the member answers (a new InMail to them is allowed again)
///     GET /_double/webhooks             the webhooks sent, with their attempts
///
/// To the webhooks registered with it (`POST /api/v1/webhooks`, or given at start), it sends
/// the gateway's webhooks: `message_received` for every message of a chat (the account's own
/// too) to those of source `messaging`, `AccountStatus` changes to those of `account_status`.
public final class GatewayDoubleServer: Sendable {
    let apiKey: String
    let state: GatewayDoubleState
    let webhooks = WebhookSender()

    /// An account the double has not been told about gets `defaultAccount`'s credits; `webhooks`
    /// are registered from the start.
    public init(apiKey: String, defaultAccount: DoubleAccount = DoubleAccount(premium: 1_000, salesNavigator: 1_000, recruiter: 1_000),
                seed: UInt64 = 1, webhooks: [WebhookTarget] = []) {
        self.apiKey = apiKey
        state = GatewayDoubleState(defaultAccount: defaultAccount, seed: seed)
        for target in webhooks { self.webhooks.register(target) }
    }

    /// Stops sending webhooks.
    public func shutdown() {
        webhooks.shutdown()
    }

    /// The webhooks sent so far.
    public var webhookDeliveries: [WebhookDelivery] { webhooks.deliveries.withLock { $0 } }

    /// The provider id of a connected account's own LinkedIn member (the sender of its messages).
    public static func ownProviderID(ofAccount accountID: String) -> String { providerID(for: "account:\(accountID)") }


    /// Serves on `host:port` until the task is cancelled; `onListening` gets the bound port.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let responder = CallbackResponder<DoubleContext> { [self] request, context in
            try await self.respond(request, context: context)
        }
        let app = Application(
            responder: responder, configuration: .init(address: .hostname(host, port: port), serverName: "inmailq-gateway-double"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: Logger(label: "inmailq.gateway-double", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await app.run()
    }

    // MARK: - What the control API reads and sets

    /// Every message accepted, in order.
    public var messages: [DoubleMessage] { state.withContents { $0.sent } }
    /// Request counts by "METHOD path status".
    public var requestCounts: [String: Int] { state.withContents { $0.requests } }
    public func setFaults(_ faults: GatewayFaults) { state.withContents { $0.faults = faults } }
    public func setAccount(_ id: String, _ account: DoubleAccount) {
        let before = state.withContents { contents in
            defer { contents.accounts[id] = account }
            return contents.accounts[id]?.status ?? "ok"
        }
        if before != account.status {
            let message = ["ok": "OK", "disconnected": "CREDENTIALS"][account.status] ?? "ERROR"
            webhooks.accountStatus(accountID: id, message: message)
        }
    }
    public func account(_ id: String) -> DoubleAccount? { state.withContents { $0.accounts[id] } }
    public func setMember(_ identifier: String, _ member: DoubleMember) { state.withContents { $0.members[identifier] = member } }
    /// The member answers in the chat: LinkedIn then lets the account InMail them again.
    public func reply(inChat chatID: String, text: String) {
        let reply = state.withContents { contents -> (DoubleMessage, String)? in
            guard var chat = contents.chats[chatID] else { return nil }
            let id = "msg_\(contents.nextID)"
            contents.nextID += 1
            contents.sent.append(DoubleMessage(id: id, chatID: chatID, accountID: chat.accountID, attendeeID: chat.attendeeID,
                                               text: text, subject: nil, api: nil, inmail: false, answered: true, isSender: false))
            chat.messages.append(contents.sent.count - 1)
            chat.answered = true
            contents.chats[chatID] = chat
            let identifier = contents.members.keys.first { Self.providerID(for: $0) == chat.attendeeID } ?? chat.attendeeID
            return (contents.sent[contents.sent.count - 1], identifier)
        }
        if let (message, identifier) = reply {
            webhooks.messageReceived(accountID: message.accountID, ownProviderID: Self.ownProviderID(ofAccount: message.accountID),
                                     chatID: chatID, messageID: message.id, text: text, senderProviderID: message.attendeeID,
                                     senderName: identifier)
        }
    }

    /// The account's own message went out: the gateway's webhook carries it too.
    func announceSent(_ message: DoubleMessage) {
        let own = Self.ownProviderID(ofAccount: message.accountID)
        webhooks.messageReceived(accountID: message.accountID, ownProviderID: own, chatID: message.chatID, messageID: message.id,
                                 text: message.text, senderProviderID: own, senderName: message.accountID)
    }

    /// The provider id the double gives a public identifier or lead id.
    public static func providerID(for identifier: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identifier.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "ACoAA" + String(hash, radix: 16, uppercase: true)
    }
}

/// The request context: Hummingbird's, with the connection, so a fault can drop it.
struct DoubleContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    var maxUploadSize: Int { 1 << 20 }
}
