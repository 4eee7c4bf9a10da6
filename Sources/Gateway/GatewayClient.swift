import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Where the gateway is and how to talk to it. The API key is kept out of every description.
public struct GatewayConfiguration: Sendable, CustomStringConvertible {
    /// The gateway's base URL (Unipile's "DSN"), `https://api8.unipile.com:13851` say, without a path.
    public var baseURL: String
    public var apiKey: String
    /// How long opening a connection may take.
    public var connectTimeout: Duration = .seconds(5)
    /// How long a whole request may take, answer included; past it, the request counts as
    /// possibly gone out.
    public var requestTimeout: Duration = .seconds(30)
    /// Connections kept open to the gateway (one per handler thread is enough).
    public var maxConnections = 16

    /// Checks the URL: http or https, a host, no path, query or credentials.
    public init(baseURL: String, apiKey: String) throws(GatewayConfigurationError) {
        var trimmed = baseURL.trimmingCharacters(in: .whitespaces)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URLComponents(string: trimmed), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty
        else {
            throw .badURL(baseURL, reason: "it is not an http:// or https:// URL with a host")
        }
        guard url.path.isEmpty, url.query == nil, url.fragment == nil, url.user == nil, url.password == nil else {
            throw .badURL(baseURL, reason: "give the gateway's base URL only (scheme, host and port), without a path, query or credentials")
        }
        guard !apiKey.isEmpty, !apiKey.contains(where: { $0.isNewline }) else {
            throw .badAPIKey("it is empty or has a line break")
        }
        self.baseURL = trimmed
        self.apiKey = apiKey
    }

    public var description: String { "gateway \(baseURL) (API key of \(apiKey.count) characters)" }
}

/// A gateway setting that cannot work, named with the reason.
public enum GatewayConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case badURL(String, reason: String)
    case badAPIKey(String)

    public var description: String {
        switch self {
        case .badURL(let url, let reason): "gateway URL \"\(url.prefix(200))\" cannot be used: \(reason)"
        case .badAPIKey(let reason): "gateway API key cannot be used: \(reason)"
        }
    }
}

/// A request that did not succeed.
public enum GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The gateway answered with an error: its status, documented type and words.
    case answered(status: Int, type: String?, title: String?, detail: String?, retryAfter: Duration?)
    /// No answer: connection refused or reset, a timeout. The request may have gone out.
    case noAnswer(String)
    /// An answer that does not read as the API documents it.
    case unreadableAnswer(status: Int, String)

    /// What the error means for a send.
    public var errorClass: GatewayErrorClass {
        switch self {
        case .answered(let status, let type, _, _, _): UnipileV1.classify(status: status, type: type)
        case .noAnswer: .temporary
        case .unreadableAnswer(let status, _): status >= 500 ? .temporary : .unknown
        }
    }

    /// The gateway's own words, for a contact's reason or an account's.
    public var description: String {
        switch self {
        case .answered(let status, let type, let title, let detail, _):
            [title, detail].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
                + " (HTTP \(status)\(type.map { ", \($0)" } ?? ""))"
        case .noAnswer(let reason): "no answer from the gateway: \(reason)"
        case .unreadableAnswer(let status, let reason): "unreadable gateway answer (HTTP \(status)): \(reason)"
        }
    }
}

/// Spaces the requests of a fleet of workers (`--gateway-rps`): `acquire` returns when one more
/// request may go.
public protocol RequestPacer: Sendable {
    func acquire() throws
}

/// A LinkedIn profile as the gateway resolved it.
public struct GatewayMember: Sendable, Equatable {
    /// The id chats and messages name the member by (`ACo...`, `ACw...`, `AE...`).
    public var providerID: String
    /// A 1st-degree connection of the account (S3: a regular message, no InMail).
    public var firstDegree: Bool
}

/// A message the gateway lists in a chat.
public struct GatewayMessage: Sendable, Equatable {
    public var id: String
    public var chatID: String?
    public var text: String
    /// True for a message the account sent.
    public var isSender: Bool
}

/// A webhook registered with the gateway.
public struct GatewayWebhook: Sendable, Equatable {
    public var id: String
    /// `messaging`, `account_status`, ...
    public var source: String
    public var url: String
    public var name: String
}

/// A sent message's ids.
public struct GatewaySent: Sendable, Equatable {
    public var chatID: String
    public var messageID: String
}

/// An account's InMail credits per product, as LinkedIn counts them (nil: no such product).
public struct GatewayInMailBalance: Sendable, Equatable {
    public var premium: Int?
    public var recruiter: Int?
    public var salesNavigator: Int?

    public func credits(for api: UnipileV1.LinkedInAPI) -> Int? {
        switch api {
        case .classic: premium
        case .salesNavigator: salesNavigator
        case .recruiter: recruiter
        }
    }
}

/// The gateway's API over HTTP, for callers on ordinary threads.
///
/// Requests run on the HTTP client's own event loops (async-http-client, one connection pool to
/// the gateway, TLS for https URLs); each method waits for its answer on the calling thread,
/// which is a worker's handler thread and never an event loop, so no event loop is ever blocked.
/// Every request carries the API key header and ends by the request timeout.
public final class GatewayClient: Sendable {
    public let configuration: GatewayConfiguration
    private let http: HTTPClient
    private let pacer: (any RequestPacer)?
    private let logger: Logger

    public init(_ configuration: GatewayConfiguration, pacer: (any RequestPacer)? = nil, logger: Logger = Logger(label: "inmailq.gateway")) {
        self.configuration = configuration
        self.pacer = pacer
        self.logger = logger
        var settings = HTTPClient.Configuration(
            timeout: .init(connect: configuration.connectTimeout.timeAmount,
                           read: configuration.requestTimeout.timeAmount),
            connectionPool: .init(idleTimeout: .seconds(60),
                                  concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, configuration.maxConnections)))
        settings.httpVersion = .http1Only
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
    }

    /// Closes the connections; waits for requests under way.
    public func shutdown() {
        try? http.syncShutdown()
    }

    /// Fails unless the gateway answers the key (a wrong key answers 401).
    public func checkAccess() throws(GatewayError) {
        _ = try send(.GET, UnipileV1.accountsPath, query: ["limit": "1"])
    }

    /// Resolves a LinkedIn public identifier or Sales Navigator lead id, seen from `accountID`.
    public func member(_ identifier: String, accountID: String) throws(GatewayError) -> GatewayMember {
        let profile: UnipileV1.UserProfile = try decode(
            send(.GET, UnipileV1.userPath(identifier), query: ["account_id": accountID]))
        return GatewayMember(providerID: profile.provider_id, firstDegree: profile.network_distance == "FIRST_DEGREE")
    }

    /// Starts a chat with `attendee` by sending `text`: an InMail with `subject` when `inmail`,
    /// through the product `api`.
    public func startChat(accountID: String, attendee: String, text: String, subject: String?, api: UnipileV1.LinkedInAPI,
                          inmail: Bool) throws(GatewayError) -> GatewaySent {
        var form: [(String, String)] = [
            (UnipileV1.Field.accountID, accountID), (UnipileV1.Field.attendeesIDs, attendee), (UnipileV1.Field.text, text),
        ]
        if let subject { form.append((UnipileV1.Field.subject, subject)) }
        if api != .classic || inmail { form.append((UnipileV1.Field.linkedInAPI, api.rawValue)) }
        if inmail { form.append((UnipileV1.Field.linkedInInMail, "true")) }
        let started: UnipileV1.ChatStarted = try decode(send(.POST, UnipileV1.chatsPath, form: form))
        guard let chat = started.chat_id, let message = started.message_id else {
            throw .unreadableAnswer(status: 201, "a started chat without chat_id or message_id")
        }
        return GatewaySent(chatID: chat, messageID: message)
    }

    /// Sends `text` in an existing chat.
    public func sendMessage(chatID: String, text: String) throws(GatewayError) -> GatewaySent {
        let sent: UnipileV1.MessageSent = try decode(
            send(.POST, UnipileV1.chatMessagesPath(chatID), form: [(UnipileV1.Field.text, text)]))
        guard let message = sent.message_id else { throw .unreadableAnswer(status: 201, "a sent message without message_id") }
        return GatewaySent(chatID: chatID, messageID: message)
    }

    /// The latest messages of a chat, newest first.
    public func messages(inChat chatID: String, limit: Int = 50) throws(GatewayError) -> [GatewayMessage] {
        try messages(send(.GET, UnipileV1.chatMessagesPath(chatID), query: ["limit": String(limit)]))
    }

    /// The latest messages of every chat of `accountID` with an attendee (provider id).
    public func messages(withAttendee attendee: String, accountID: String, limit: Int = 50) throws(GatewayError) -> [GatewayMessage] {
        try messages(send(.GET, UnipileV1.attendeeMessagesPath(attendee), query: ["account_id": accountID, "limit": String(limit)]))
    }

    /// The account's InMail credits as LinkedIn counts them.
    public func inmailBalance(accountID: String) throws(GatewayError) -> GatewayInMailBalance {
        let balance: UnipileV1.InMailBalance = try decode(send(.GET, UnipileV1.inmailBalancePath, query: ["account_id": accountID]))
        return GatewayInMailBalance(
            premium: balance.premium.map { Int($0) }, recruiter: balance.recruiter.map { Int($0) },
            salesNavigator: balance.sales_navigator.map { Int($0) })
    }

    /// The webhooks registered with the gateway.
    public func webhooks() throws(GatewayError) -> [GatewayWebhook] {
        let list: UnipileV1.WebhookList = try decode(send(.GET, UnipileV1.webhooksPath))
        return list.items.map { GatewayWebhook(id: $0.id, source: $0.source ?? "", url: $0.request_url ?? "", name: $0.name ?? "") }
    }

    /// Registers a webhook: the gateway POSTs the events of `source` (`messaging`,
    /// `account_status`) to `url` with `headers` on every delivery. Returns its id.
    public func registerWebhook(url: String, source: String, name: String, headers: [(name: String, value: String)])
        throws(GatewayError) -> String
    {
        let request = UnipileV1.WebhookRequest(
            request_url: url, source: source, name: name, headers: headers.map { .init(key: $0.name, value: $0.value) })
        let body: Data
        do {
            body = try JSONEncoder().encode(request)
        } catch {
            throw .noAnswer("not sent, the request could not be built: \(error)")
        }
        let created: UnipileV1.WebhookCreated = try decode(send(.POST, UnipileV1.webhooksPath, json: body))
        return created.webhook_id
    }

    // MARK: - HTTP

    private struct Answer {
        var status: Int
        var body: Data
    }

    private func messages(_ answer: Answer) throws(GatewayError) -> [GatewayMessage] {
        let list: UnipileV1.MessageList = try decode(answer)
        return list.items.map {
            GatewayMessage(id: $0.id, chatID: $0.chat_id, text: $0.text ?? "", isSender: $0.is_sender ?? false)
        }
    }

    private func decode<T: Decodable>(_ answer: Answer) throws(GatewayError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: answer.body)
        } catch {
            throw .unreadableAnswer(status: answer.status, "\(T.self): \(error)")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [String: String] = [:], form: [(String, String)]? = nil,
                      json: Data? = nil) throws(GatewayError) -> Answer
    {
        do {
            try pacer?.acquire()
        } catch {
            throw .noAnswer("not sent: \(error)")
        }
        var url = configuration.baseURL + path
        if !query.isEmpty {
            url += "?" + query.sorted { $0.key < $1.key }.map { "\(UnipileV1.escaped($0.key))=\(UnipileV1.escaped($0.value))" }
                .joined(separator: "&")
        }
        let request: HTTPClient.Request
        do {
            var headers = HTTPHeaders([(UnipileV1.apiKeyHeader, configuration.apiKey), ("accept", "application/json")])
            var body: HTTPClient.Body?
            if let form {
                let multipart = MultipartForm(form)
                headers.add(name: "content-type", value: multipart.contentType)
                body = .data(multipart.body)
            } else if let json {
                headers.add(name: "content-type", value: "application/json")
                body = .data(json)
            }
            request = try HTTPClient.Request(url: url, method: method, headers: headers, body: body)
        } catch {
            throw .noAnswer("not sent, the request could not be built: \(error)")
        }
        let response: HTTPClient.Response
        let started = ContinuousClock.now
        do {
            response = try http.execute(request: request, deadline: .now() + configuration.requestTimeout.timeAmount)
                .wait()
        } catch {
            GatewayMetrics.record(method: method, status: nil, took: ContinuousClock.now - started)
            logger.debug("gateway request got no answer", metadata: ["path": "\(path)", "error": "\(error)"])
            throw .noAnswer(Self.describe(error))
        }
        let status = Int(response.status.code)
        GatewayMetrics.record(method: method, status: status, took: ContinuousClock.now - started)
        let body = response.body.map { Data($0.readableBytesView) } ?? Data()
        guard (200..<300).contains(status) else {
            let problem = try? JSONDecoder().decode(UnipileV1.Problem.self, from: body)
            throw .answered(
                status: status, type: problem?.type, title: problem?.title ?? response.status.reasonPhrase, detail: problem?.detail,
                retryAfter: response.headers.first(name: "retry-after").flatMap(Self.retryAfter))
        }
        return Answer(status: status, body: body)
    }

    /// `Retry-After` as seconds or as an HTTP date.
    static func retryAfter(_ value: String) -> Duration? {
        if let seconds = Int(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSinceNow.rounded(.up))))
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout: return "timed out"
            case .connectTimeout: return "connect timed out"
            case .remoteConnectionClosed: return "connection closed before the answer"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }
}

/// A `multipart/form-data` body of text fields.
struct MultipartForm {
    let boundary = "inmailq-" + UUID().uuidString
    let body: Data

    init(_ fields: [(String, String)]) {
        var text = ""
        for (name, value) in fields {
            text += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        text += "--\(boundary)--\r\n"
        body = Data(text.utf8)
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}

extension Duration {
    /// The same span as NIO's `TimeAmount`.
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
