import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A webhook registered with the double (`POST /api/v1/webhooks`, or `--webhook-url`): where
/// it sends the events of one source, with the headers set at registration (a secret among
/// them), on every delivery.
public struct WebhookTarget: Sendable {
    public var id: String
    /// `messaging` (new messages) or `account_status`.
    public var source: String
    public var url: String
    public var name: String
    public var headers: [(name: String, value: String)]
    /// The first retry's delay; each next one doubles (the gateway makes five retries when the
    /// answer is not a 200 within 30 seconds).
    public var retryBase: Duration = .seconds(1)

    public init(id: String, source: String, url: String, name: String, headers: [(name: String, value: String)]) {
        self.id = id
        self.source = source
        self.url = url
        self.name = name
        self.headers = headers
    }
}

/// A webhook the double sent (or is still trying to), kept for assertions.
public struct WebhookDelivery: Codable, Sendable, Equatable {
    /// `message_received`, or `account_status`.
    public var event: String
    public var body: String
    public var attempts: Int
    /// The receiver answered 200.
    public var delivered: Bool
}

/// Sends the double's webhooks (new messages, the account's own included, and account status
/// changes) as JSON POSTs in the gateway's payload shapes to every webhook registered for their
/// source, retrying five times with a doubling delay while the receiver does not answer 200.
final class WebhookSender: Sendable {
    private let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let targets = Mutex<[WebhookTarget]>([])
    let deliveries = Mutex<[WebhookDelivery]>([])

    func shutdown() {
        try? http.syncShutdown()
    }

    /// Registers a webhook: events of its source go to it from now on.
    func register(_ target: WebhookTarget) {
        targets.withLock { $0.append(target) }
    }

    /// A new message in a chat: `sender` is the account's own provider id for its own messages;
    /// `ownProviderID` is the account's own (`account_info.user_id`).
    func messageReceived(accountID: String, ownProviderID: String, chatID: String, messageID: String, text: String,
                         senderProviderID: String, senderName: String) {
        send(event: "message_received", source: "messaging") { target in [
            "event": "message_received", "account_id": accountID, "account_type": "LINKEDIN", "webhook_name": target.name,
            "account_info": ["type": "LINKEDIN", "feature": "classic", "user_id": ownProviderID],
            "chat_id": chatID, "message_id": messageID, "message": text,
            "timestamp": ISO8601DateFormatter().string(from: Date()),
            "sender": ["attendee_provider_id": senderProviderID, "attendee_name": senderName],
        ] }
    }

    /// An account's connection changed: `OK`, `CREDENTIALS` (disconnected) or `ERROR` (restricted).
    func accountStatus(accountID: String, message: String) {
        send(event: "account_status", source: "account_status") { _ in
            ["AccountStatus": ["account_id": accountID, "account_type": "LINKEDIN", "message": message]]
        }
    }

    private func send(event: String, source: String, _ payload: (WebhookTarget) -> [String: Any]) {
        for target in targets.withLock({ $0 }) where target.source == source {
            guard let body = try? JSONSerialization.data(withJSONObject: payload(target), options: [.sortedKeys]) else { continue }
            let index = deliveries.withLock { deliveries in
                deliveries.append(WebhookDelivery(event: event, body: String(decoding: body, as: UTF8.self), attempts: 0, delivered: false))
                return deliveries.count - 1
            }
            Task { [self] in
                var delay = target.retryBase
                for attempt in 1...6 {
                    let delivered = await post(body, to: target)
                    deliveries.withLock {
                        $0[index].attempts = attempt
                        $0[index].delivered = delivered
                    }
                    if delivered { return }
                    try? await Task.sleep(for: delay)
                    delay *= 2
                }
            }
        }
    }

    private func post(_ body: Data, to target: WebhookTarget) async -> Bool {
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        for header in target.headers {
            request.headers.add(name: header.name, value: header.value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            _ = try? await response.body.collect(upTo: 1 << 20)
            return response.status == .ok
        } catch {
            return false
        }
    }
}
