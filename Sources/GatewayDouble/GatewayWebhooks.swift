import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Where the double sends its webhooks, as a gateway does once a webhook is registered: the
/// receiving URL and the header (a secret) set at registration, sent with every delivery.
public struct WebhookTarget: Sendable {
    public var url: String
    public var headerName: String
    public var headerValue: String
    /// The first retry's delay; each next one doubles (the gateway makes five retries when the
    /// answer is not a 200 within 30 seconds).
    public var retryBase: Duration = .seconds(1)

    public init(url: String, headerName: String, headerValue: String) {
        self.url = url
        self.headerName = headerName
        self.headerValue = headerValue
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
/// changes) as JSON POSTs in the gateway's payload shapes, retrying five times with a doubling
/// delay while the receiver does not answer 200.
final class WebhookSender: Sendable {
    let target: WebhookTarget
    private let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let deliveries = Mutex<[WebhookDelivery]>([])

    init(target: WebhookTarget) {
        self.target = target
    }

    func shutdown() {
        try? http.syncShutdown()
    }

    /// A new message in a chat: `sender` is the account's own provider id for its own messages.
    func messageReceived(accountID: String, chatID: String, messageID: String, text: String, senderProviderID: String,
                         senderName: String) {
        send(event: "message_received", [
            "event": "message_received", "account_id": accountID, "account_type": "LINKEDIN", "webhook_name": "inmailq",
            "chat_id": chatID, "message_id": messageID, "message": text,
            "timestamp": ISO8601DateFormatter().string(from: Date()),
            "sender": ["attendee_provider_id": senderProviderID, "attendee_name": senderName],
        ])
    }

    /// An account's connection changed: `OK`, `CREDENTIALS` (disconnected) or `ERROR` (restricted).
    func accountStatus(accountID: String, message: String) {
        send(event: "account_status", ["AccountStatus": ["account_id": accountID, "account_type": "LINKEDIN", "message": message]])
    }

    private func send(event: String, _ payload: [String: Any]) {
        guard let body = try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]) else { return }
        let index = deliveries.withLock { deliveries in
            deliveries.append(WebhookDelivery(event: event, body: String(decoding: body, as: UTF8.self), attempts: 0, delivered: false))
            return deliveries.count - 1
        }
        Task { [self] in
            var delay = target.retryBase
            for attempt in 1...6 {
                let delivered = await post(body)
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

    private func post(_ body: Data) async -> Bool {
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: target.headerName, value: target.headerValue)
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
