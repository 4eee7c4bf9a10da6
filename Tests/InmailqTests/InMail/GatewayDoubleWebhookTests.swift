import EmbeddedPostgres
import Foundation
import Gateway
import GatewayDouble
import Testing

/// The double's webhooks, received by a small HTTP server (Python's standard library) that
/// refuses the first delivery, so the retry shows.
@Suite("Gateway double webhooks")
struct GatewayDoubleWebhookTests {
    static let receiver = """
        import http.server, json, sys
        log, seen = sys.argv[1], []
        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length'])).decode()
                seen.append(body)
                with open(log, 'a') as f:
                    f.write(json.dumps({'auth': self.headers.get('Unipile-Auth'), 'body': json.loads(body)}) + '\\n')
                self.send_response(500 if len(seen) == 1 else 200)
                self.end_headers()
            def log_message(self, *args): pass
        server = http.server.HTTPServer(('127.0.0.1', 0), Hook)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    @Test("New messages (the account's own too) and account status changes arrive as webhooks with the registered header, retried until answered 200")
    func webhooksArriveAndAreRetried() throws {
        let log = TestScratch.directory + "/webhooks-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        let out = log + ".out"
        let receiver = try ChildProcess.spawn(["/usr/bin/env", "python3", "-c", Self.receiver, log], outputPath: out)
        defer { receiver.signal(SIGKILL); _ = receiver.wait() }
        var port: String?
        _ = eventually(timeout: .seconds(20)) {
            port = (try? String(contentsOfFile: out, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
            return port != nil
        }
        let hookPort = try #require(port)
        let key = "webhook-test"
        let double = try GatewayDoubleProcess(apiKey: key, arguments: [
            "--webhook-url", "http://127.0.0.1:\(hookPort)/hook", "--webhook-header", "Unipile-Auth: s3cret",
        ])
        let client = GatewayClient(try GatewayConfiguration(baseURL: double.url, apiKey: key))
        defer { client.shutdown() }
        let member = try client.member("ada-lovelace", accountID: "li-1")
        let sent = try client.startChat(accountID: "li-1", attendee: member.providerID, text: "Hello Ada", subject: "Hi",
                                        api: .classic, inmail: true)
        try double.request(.POST, "/_double/chats/\(sent.chatID)/reply", body: Data(#"{"text": "Happy to talk"}"#.utf8))
        try double.setAccount("li-1", DoubleAccount(premium: 5, status: "disconnected"))

        var lines: [[String: Any]] = []
        let arrived = eventually(timeout: .seconds(20), every: 0.1) {
            lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return lines.count >= 4
        }
        #expect(arrived, "\(lines)")
        #expect(lines.allSatisfy { $0["auth"] as? String == "s3cret" })
        let bodies = lines.compactMap { $0["body"] as? [String: Any] }
        let messages = bodies.filter { $0["event"] as? String == "message_received" }
        // The first delivery was refused (500) and sent again: the own message arrives twice.
        #expect(messages.filter { $0["message_id"] as? String == sent.messageID }.count == 2)
        let own = try #require(messages.first { $0["message_id"] as? String == sent.messageID })
        #expect((own["sender"] as? [String: Any])?["attendee_provider_id"] as? String == GatewayDoubleServer.ownProviderID(ofAccount: "li-1"))
        let reply = try #require(messages.first { $0["message"] as? String == "Happy to talk" })
        #expect((reply["sender"] as? [String: Any])?["attendee_provider_id"] as? String == member.providerID)
        #expect(reply["chat_id"] as? String == sent.chatID && reply["account_id"] as? String == "li-1")
        let status = try #require(bodies.compactMap { $0["AccountStatus"] as? [String: Any] }.first)
        #expect(status["account_id"] as? String == "li-1" && status["message"] as? String == "CREDENTIALS")
        let deliveries = try JSONDecoder().decode([WebhookDelivery].self, from: double.request(.GET, "/_double/webhooks"))
        #expect(deliveries.count == 3 && deliveries.allSatisfy(\.delivered))
        #expect(deliveries.first?.attempts == 2)
    }
}
