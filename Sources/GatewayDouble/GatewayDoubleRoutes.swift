import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The double's answers, route by route.
extension GatewayDoubleServer {
    func respond(_ request: Request, context: DoubleContext) async throws -> Response {
        var request = request
        let path = request.uri.path
        let query = Self.query(request.uri.query)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        let body = try await request.collectBody(upTo: 1 << 20)
        let method = request.method
        var answer: Answer
        if parts.first == "_double" {
            answer = control(method, Array(parts.dropFirst()), body: Data(buffer: body))
        } else {
            answer = await api(method, parts, query: query, headers: request.headers, contentType: request.headers[.contentType],
                               body: Data(buffer: body), context: context)
        }
        let shape = parts.enumerated().map { index, part in
            parts.first == "_double" || index < 3 || ["messages", "chats"].contains(part) ? part : "{id}"
        }.joined(separator: "/")
        state.withContents { $0.requests["\(method.rawValue) /\(shape) \(answer.status)", default: 0] += 1 }
        if answer.drop {
            try? await context.channel.close()
            throw CancellationError()
        }
        if answer.delayMilliseconds > 0 { try? await Task.sleep(for: .milliseconds(answer.delayMilliseconds)) }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        for (name, value) in answer.headers { headers[HTTPField.Name(name)!] = value }
        return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(data: answer.body)))
    }

    struct Answer {
        var status: Int
        var body: Data
        var headers: [String: String] = [:]
        var delayMilliseconds = 0
        var drop = false

        static func json(_ status: Int, _ object: Any) -> Answer {
            Answer(status: status, body: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
        }

        static func encoded<T: Encodable>(_ value: T) -> Answer {
            Answer(status: 200, body: (try? JSONEncoder().encode(value)) ?? Data())
        }

        /// The gateway's RFC 7807 error body.
        static func problem(_ status: Int, _ type: String, _ title: String, _ detail: String) -> Answer {
            json(status, ["status": status, "type": "errors/\(type)", "title": title, "detail": detail])
        }
    }

    // MARK: - The API

    private func api(_ method: HTTPRequest.Method, _ parts: [String], query: [String: String], headers: HTTPFields,
                     contentType: String?, body: Data, context: DoubleContext) async -> Answer {
        guard headers[HTTPField.Name("X-API-KEY")!] == apiKey else {
            return .problem(401, "missing_credentials", "Missing credentials", "The X-API-KEY header is missing or does not match a valid key.")
        }
        let isSend = method == .post
        let (fault, faults) = state.withContents { contents -> (GatewayFault?, GatewayFaults) in
            var fault: GatewayFault?
            if isSend, !contents.faults.next.isEmpty {
                fault = contents.faults.next.removeFirst()
            } else {
                for candidate in GatewayFault.allCases where isSend || !candidate.onlyOnSends {
                    if let rate = contents.faults.rates[candidate.rawValue], contents.random.next() < rate {
                        fault = candidate
                        break
                    }
                }
            }
            return (fault, contents.faults)
        }
        var answer = route(method, parts, query: query, contentType: contentType, body: body, fault: fault, faults: faults)
        answer.delayMilliseconds += faults.latencyMilliseconds
        return answer
    }

    private func route(_ method: HTTPRequest.Method, _ parts: [String], query: [String: String], contentType: String?, body: Data,
                       fault: GatewayFault?, faults: GatewayFaults) -> Answer {
        switch fault {
        case .tooManyRequests:
            var answer = Answer.problem(429, "too_many_requests", "Too many requests",
                                        "The provider cannot accept any more requests at the moment. Please try again later.")
            answer.headers["Retry-After"] = String(faults.retryAfterSeconds)
            return answer
        case .serverError:
            return .problem(500, "unexpected_error", "Unexpected error", "Something went wrong.")
        default:
            break
        }
        let path = parts.joined(separator: "/")
        switch (method, parts.count) {
        case (.get, 3) where path == "api/v1/accounts":
            let items = state.withContents { $0.accounts.keys.sorted() }.map {
                ["object": "Account", "id": $0, "type": "LINKEDIN", "name": $0] as [String: Any]
            }
            return .json(200, ["object": "AccountList", "items": items, "cursor": NSNull()])
        case (.get, 4) where parts[2] == "users":
            return lookUp(parts[3], accountID: query["account_id"])
        case (.get, 4) where path == "api/v1/linkedin/inmail_balance":
            guard let accountID = query["account_id"] else { return missing("account_id") }
            if let refusal = accountRefusal(accountID, fault: nil) { return refusal }
            let account = state.withContents { $0.accounts[accountID] ?? state.defaultAccount }
            return .json(200, ["object": "LinkedinInmailBalance", "premium": account.premium.map { $0 as Any } ?? NSNull(),
                               "recruiter": account.recruiter.map { $0 as Any } ?? NSNull(),
                               "sales_navigator": account.salesNavigator.map { $0 as Any } ?? NSNull()])
        case (.post, 3) where path == "api/v1/chats":
            guard let form = Self.multipart(body, contentType: contentType) else {
                return .problem(400, "malformed_request", "Malformed request", "The body must be multipart/form-data.")
            }
            return startChat(form, fault: fault, faults: faults)
        case (.post, 5) where parts[2] == "chats" && parts[4] == "messages":
            guard let form = Self.multipart(body, contentType: contentType) else {
                return .problem(400, "malformed_request", "Malformed request", "The body must be multipart/form-data.")
            }
            return sendInChat(parts[3], form, fault: fault, faults: faults)
        case (.get, 5) where parts[2] == "chats" && parts[4] == "messages":
            let unknown = state.withContents { $0.chats[parts[3]] == nil }
            return listMessages(missing: unknown) { chatID, _ in chatID == parts[3] }
        case (.get, 5) where parts[2] == "chat_attendees" && parts[4] == "messages":
            guard let accountID = query["account_id"] else { return missing("account_id") }
            return listMessages(missing: false) { _, chat in chat.attendeeID == parts[3] && chat.accountID == accountID }
        case (.post, 3) where path == "api/v1/webhooks":
            return registerWebhook(body)
        case (.get, 3) where path == "api/v1/webhooks":
            let items = webhooks.targets.withLock { $0 }.map { target -> [String: Any] in
                ["object": "Webhook", "id": target.id, "source": target.source, "request_url": target.url, "name": target.name,
                 "format": "json", "enabled": true, "account_ids": [String](),
                 "headers": target.headers.map { ["key": $0.name, "value": $0.value] }]
            }
            return .json(200, ["object": "WebhookList", "items": items, "cursor": NSNull()])
        default:
            return .problem(404, "resource_not_found", "Resource not found.", "No route \(method.rawValue) /\(path).")
        }
    }

    /// `POST /api/v1/webhooks`: JSON `request_url`, `source`, optional `name` and `headers`
    /// (`[{"key": ..., "value": ...}]`, sent with every delivery).
    private func registerWebhook(_ body: Data) -> Answer {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            return .problem(400, "malformed_request", "Malformed request", "The body must be a JSON object.")
        }
        guard let url = object["request_url"] as? String, URL(string: url)?.scheme?.hasPrefix("http") == true else {
            return missing("request_url")
        }
        guard let source = object["source"] as? String else { return missing("source") }
        guard ["messaging", "account_status", "users", "email", "email_tracking", "calendar_event"].contains(source) else {
            return .problem(400, "invalid_parameters", "Invalid parameters", "source must be one of messaging, users, account_status, "
                            + "email, email_tracking, calendar_event.")
        }
        var headers: [(name: String, value: String)] = []
        for entry in object["headers"] as? [[String: Any]] ?? [] {
            guard let key = entry["key"] as? String, let value = entry["value"] as? String, !key.isEmpty else {
                return .problem(400, "invalid_parameters", "Invalid parameters", "each header needs a key and a value.")
            }
            headers.append((key, value))
        }
        let id = state.withContents { contents in
            defer { contents.nextID += 1 }
            return "whk_\(contents.nextID)"
        }
        webhooks.register(WebhookTarget(id: id, source: source, url: url, name: object["name"] as? String ?? "", headers: headers))
        return .json(201, ["object": "WebhookCreated", "webhook_id": id])
    }

    private func missing(_ field: String) -> Answer {
        .problem(400, "missing_parameters", "Missing parameters", "\(field) is required.")
    }

    /// Nil when the account may act; otherwise LinkedIn's refusal.
    private func accountRefusal(_ accountID: String, fault: GatewayFault?) -> Answer? {
        let account = state.withContents { contents in
            if contents.accounts[accountID] == nil { contents.accounts[accountID] = state.defaultAccount }
            return contents.accounts[accountID]!
        }
        if fault == .disconnectedAccount || account.status == "disconnected" {
            return .problem(401, "disconnected_account", "Disconnected account",
                            "The account appears to be disconnected from the provider service.")
        }
        if account.status == "restricted" {
            return .problem(403, "account_restricted", "Account restricted", "Access to this account has been restricted by the provider.")
        }
        return nil
    }

    private func lookUp(_ identifier: String, accountID: String?) -> Answer {
        guard let accountID else { return missing("account_id") }
        if let refusal = accountRefusal(accountID, fault: nil) { return refusal }
        let member = state.withContents { $0.members[identifier] ?? DoubleMember() }
        return .json(200, [
            "object": "UserProfile", "provider": "LINKEDIN", "provider_id": Self.providerID(for: identifier),
            "public_identifier": identifier, "network_distance": member.firstDegree ? "FIRST_DEGREE" : "OUT_OF_NETWORK",
        ])
    }

    private func member(byProviderID providerID: String) -> DoubleMember? {
        state.withContents { contents in
            contents.members.first { Self.providerID(for: $0.key) == providerID }?.value
        } ?? (providerID.hasPrefix("ACoAA") ? DoubleMember() : nil)
    }

    private func startChat(_ form: [String: String], fault: GatewayFault?, faults: GatewayFaults) -> Answer {
        guard let accountID = form["account_id"], !accountID.isEmpty else { return missing("account_id") }
        guard let attendee = form["attendees_ids"], !attendee.isEmpty else { return missing("attendees_ids") }
        guard let text = form["text"], !text.isEmpty else { return missing("text") }
        if let refusal = accountRefusal(accountID, fault: fault) { return refusal }
        guard let member = member(byProviderID: attendee) else {
            return .problem(422, "invalid_recipient", "Invalid recipient", "The recipient \(attendee) does not exist.")
        }
        let inmail = form["linkedin[inmail]"] == "true"
        let api = form["linkedin[api]"] ?? "classic"
        guard ["classic", "sales_navigator", "recruiter"].contains(api) else {
            return .problem(400, "invalid_parameters", "Invalid parameters", "linkedin[api] must be classic, sales_navigator or recruiter.")
        }
        switch fault {
        case .insufficientCredits:
            return .problem(422, "insufficient_credits", "Insufficient credits", "You don't have enough InMail credits.")
        case .cannotResendYet:
            return .problem(422, "cannot_resend_yet", "Cannot resend yet", "You cannot send an InMail to this recipient again yet.")
        case .notAllowedInMail:
            return .problem(422, "not_allowed_inmail", "Not allowed InMail", "The recipient does not accept InMail.")
        case .unprocessable:
            return .problem(422, "unprocessable_entity", "Unprocessable entity", "LinkedIn rejected the request.")
        default:
            break
        }
        if inmail {
            if member.unreachable {
                return .problem(422, "not_allowed_inmail", "Not allowed InMail", "The recipient does not accept InMail.")
            }
            if api == "sales_navigator", (form["subject"] ?? "").isEmpty { return missing("subject") }
        } else if !member.firstDegree {
            return .problem(422, "no_connection_with_recipient", "No connection with recipient",
                            "The recipient appears not to be first degree connection.")
        }
        return state.withContents { contents -> Answer in
            if inmail {
                let open = contents.chats.values.contains { chat in
                    chat.accountID == accountID && chat.attendeeID == attendee && !chat.answered
                        && chat.messages.contains { contents.sent[$0].inmail }
                }
                if open {
                    return .problem(422, "cannot_resend_yet", "Cannot resend yet", "An InMail to this recipient awaits an answer.")
                }
                if !member.openProfile {
                    var account = contents.accounts[accountID] ?? state.defaultAccount
                    let credits: Int?
                    switch api {
                    case "sales_navigator": credits = account.salesNavigator
                    case "recruiter": credits = account.recruiter
                    default: credits = account.premium
                    }
                    guard let credits else {
                        return .problem(403, "feature_not_subscribed", "Feature not subscribed",
                                        "The account has no \(api) subscription for InMail.")
                    }
                    guard credits > 0 else {
                        return .problem(422, "insufficient_credits", "Insufficient credits", "You don't have enough InMail credits.")
                    }
                    switch api {
                    case "sales_navigator": account.salesNavigator = credits - 1
                    case "recruiter": account.recruiter = credits - 1
                    default: account.premium = credits - 1
                    }
                    contents.accounts[accountID] = account
                }
            }
            let chatID = "chat_\(contents.nextID)"
            let messageID = "msg_\(contents.nextID + 1)"
            contents.nextID += 2
            contents.sent.append(DoubleMessage(
                id: messageID, chatID: chatID, accountID: accountID, attendeeID: attendee, text: text, subject: form["subject"],
                api: api, inmail: inmail, answered: fault != .dropAfterSend && fault != .slowAnswer))
            contents.chats[chatID] = Chat(accountID: accountID, attendeeID: attendee, messages: [contents.sent.count - 1])
            return delivered(.json(201, ["object": "ChatStarted", "chat_id": chatID, "message_id": messageID]), fault, faults,
                             message: contents.sent[contents.sent.count - 1])
        }
    }

    private typealias Chat = GatewayDoubleState.Chat

    private func sendInChat(_ chatID: String, _ form: [String: String], fault: GatewayFault?, faults: GatewayFaults) -> Answer {
        guard let text = form["text"], !text.isEmpty else { return missing("text") }
        guard let chat = state.withContents({ $0.chats[chatID] }) else {
            return .problem(404, "resource_not_found", "Resource not found.", "No chat \(chatID).")
        }
        if let refusal = accountRefusal(chat.accountID, fault: fault) { return refusal }
        if [.notAllowedInMail, .cannotResendYet, .insufficientCredits, .unprocessable].contains(fault) {
            return .problem(422, "cant_send_message", "Cannot send message", "The message could not be sent in this chat.")
        }
        return state.withContents { contents -> Answer in
            let messageID = "msg_\(contents.nextID)"
            contents.nextID += 1
            contents.sent.append(DoubleMessage(
                id: messageID, chatID: chatID, accountID: chat.accountID, attendeeID: chat.attendeeID, text: text, subject: nil,
                api: nil, inmail: false, answered: fault != .dropAfterSend && fault != .slowAnswer))
            contents.chats[chatID]?.messages.append(contents.sent.count - 1)
            return delivered(.json(201, ["object": "MessageSent", "message_id": messageID]), fault, faults,
                             message: contents.sent[contents.sent.count - 1])
        }
    }

    /// A sent message's answer, unless a fault loses it.
    private func delivered(_ answer: Answer, _ fault: GatewayFault?, _ faults: GatewayFaults, message: DoubleMessage) -> Answer {
        announceSent(message)
        var answer = answer
        switch fault {
        case .dropAfterSend: answer.drop = true
        case .slowAnswer: answer.delayMilliseconds += faults.slowMilliseconds
        default: break
        }
        return answer
    }

    private func listMessages(missing: Bool, _ matches: (String, Chat) -> Bool) -> Answer {
        if missing { return .problem(404, "resource_not_found", "Resource not found.", "No such chat.") }
        let items: [[String: Any]] = state.withContents { contents in
            contents.chats.filter { matches($0.key, $0.value) }.flatMap { chatID, chat in
                chat.messages.map { index -> [String: Any] in
                    let message = contents.sent[index]
                    return ["object": "Message", "id": message.id, "chat_id": chatID, "text": message.text,
                            "is_sender": message.isSender ? 1 : 0, "order": index]
                }
            }
        }.sorted { ($0["order"] as! Int) > ($1["order"] as! Int) }
        return .json(200, ["object": "MessageList", "items": items, "cursor": NSNull()])
    }

    // MARK: - The control API

    private func control(_ method: HTTPRequest.Method, _ parts: [String], body: Data) -> Answer {
        let decoder = JSONDecoder()
        switch (method, parts.first, parts.count) {
        case (.get, "messages", 1):
            return .encoded(messages)
        case (.get, "requests", 1):
            return .json(200, requestCounts)
        case (.get, "webhooks", 1):
            return .encoded(webhookDeliveries)
        case (.put, "accounts", 2):
            guard let account = try? decoder.decode(DoubleAccount.self, from: body) else { return badControl("an account") }
            setAccount(parts[1], account)
            return .encoded(account)
        case (.put, "members", 2):
            guard let member = try? decoder.decode(DoubleMember.self, from: body) else { return badControl("a member") }
            setMember(parts[1], member)
            return .encoded(member)
        case (.put, "faults", 1):
            guard let faults = try? decoder.decode(GatewayFaults.self, from: body) else { return badControl("faults") }
            setFaults(faults)
            return .encoded(faults)
        case (.post, "chats", 3) where parts[2] == "reply":
            let text = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["text"] as? String ?? "Thanks!"
            reply(inChat: parts[1], text: text)
            return .json(200, ["replied": parts[1]])
        default:
            return .problem(404, "resource_not_found", "Resource not found.", "No control route \(method.rawValue) /_double/\(parts.joined(separator: "/")).")
        }
    }

    private func badControl(_ what: String) -> Answer {
        .problem(400, "invalid_parameters", "Invalid parameters", "The body is not \(what) as JSON.")
    }

    // MARK: - Parsing

    static func query(_ query: String?) -> [String: String] {
        var values: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if let name = parts.first { values[name] = parts.count > 1 ? parts[1] : "" }
        }
        return values
    }

    /// The text fields of a `multipart/form-data` body (repeated names: the last one).
    static func multipart(_ body: Data, contentType: String?) -> [String: String]? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data"),
              let range = contentType.range(of: "boundary=")
        else { return nil }
        let boundary = contentType[range.upperBound...].split(separator: ";").first.map {
            String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        } ?? ""
        guard !boundary.isEmpty, let text = String(data: body, encoding: .utf8) else { return nil }
        var fields: [String: String] = [:]
        for part in text.components(separatedBy: "--\(boundary)").dropFirst() {
            guard !part.hasPrefix("--"), let split = part.range(of: "\r\n\r\n") else { continue }
            let head = part[..<split.lowerBound]
            guard let nameStart = head.range(of: "name=\"") else { continue }
            let rest = head[nameStart.upperBound...]
            guard let nameEnd = rest.firstIndex(of: "\"") else { continue }
            var value = String(part[split.upperBound...])
            if value.hasSuffix("\r\n") { value.removeLast() }  // one Character: "\r\n" is a single grapheme
            fields[String(rest[..<nameEnd])] = value
        }
        return fields
    }
}
