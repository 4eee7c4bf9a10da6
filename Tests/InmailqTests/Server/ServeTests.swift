import Foundation
import Gateway
import GatewayDouble
import InMail
import Postgres
import Queue
import Testing

/// The gateway's webhooks through a real `inmailq serve` process over real HTTP: the gateway
/// double sends them (registered with `inmailq gateway register-webhook`), serve stores them in
/// the inbox, and the `inbox.process` job applies them. Rule ids: README "Platform rules".
@Suite("Inbound webhooks through inmailq serve")
struct ServeTests {
    /// A sender bound to gateway account `gw-1` delivering through the double, and a serve
    /// process on the same database the double's webhooks are registered to.
    final class Inbound {
        let setup: GatewayCourierTests.Setup
        let serve: ServeProcess

        /// `serve` (on the set-up's database unless given) with the double's webhooks registered to it unless told not to.
        init(setup: GatewayCourierTests.Setup? = nil, serve: ServeProcess? = nil, register: Bool = true,
             serveArguments: [String] = []) throws {
            self.setup = try setup ?? GatewayCourierTests.Setup()
            self.serve = try serve ?? ServeProcess(databaseURL: self.setup.fixture.db.url, arguments: serveArguments)
            if register {
                let registered = try self.register(self.serve.webhookURL)
                guard registered.status == 0 else { throw DoubleProcessError(message: "register-webhook: \(registered.output)") }
            }
        }

        var fixture: OutreachFixture { setup.fixture }

        func register(_ url: String) throws -> (status: Int32, output: String) {
            try InmailqProcess.run(["gateway", "register-webhook", "--url", url], environment: [
                "INMAILQ_GATEWAY_URL": setup.double.url, "INMAILQ_GATEWAY_API_KEY": GatewayCourierTests.key,
                "INMAILQ_WEBHOOK_SECRET": ServeProcess.secret,
            ])
        }

        func inbox(_ condition: SQL = "true") throws -> Int {
            try fixture.count("select count(*) from gateway_inbox where \(condition)")
        }

        /// Waits until `n` stored events match `condition`, then runs the jobs that apply them.
        func arrived(_ n: Int, _ condition: SQL = "true") throws -> Bool {
            let arrived = try eventually(timeout: .seconds(30)) { try inbox(condition) >= n }
            try fixture.drain()
            return arrived
        }

        /// The member writes `text` in the chat of `contact`'s InMail.
        func memberWrites(_ contact: Int64, _ text: String) throws {
            let chat = try #require(try fixture.message(contact)).decode(String.self, "chat_id")
            try setup.double.request(.POST, "/_double/chats/\(chat)/reply",
                                     body: JSONSerialization.data(withJSONObject: ["text": text]))
        }

        func responses(_ contact: Int64) throws -> [String] {
            try fixture.connection.query(
                "select r.kind from responses r join messages m on m.id = r.message_id where m.contact_id = \(contact) order by r.id")
                .rows.map { try $0.decode(String.self, "kind") }
        }
    }

    @Test("R1-R5 from webhooks: canned answers and replies, own messages never responses, a reply stops the member's other sequence, replays change nothing")
    func repliesThroughWebhooks() throws {
        let inbound = try Inbound()
        let (setup, f) = (inbound.setup, inbound.fixture)
        let again = try inbound.register(inbound.serve.webhookURL)
        #expect(again.status == 0 && again.output.contains("already registered"), "\(again.output)")
        #expect(try setup.client.webhooks().map(\.source).sorted() == ["account_status", "messaging"])

        let contacts = try setup.start(["ada", "bob", "cy", "dora"])
        let (ada, bob, cy, dora) = (contacts[0], contacts[1], contacts[2], contacts[3])
        try f.drain()
        // The gateway sends our own four InMails back as new messages: never responses.
        #expect(try inbound.arrived(4))
        #expect(try inbound.inbox("state = 'processed' and outcome like '%own message%'") == 4)
        #expect(try f.count("select count(*) from responses") == 0)
        let balance = try setup.creditBalance

        // Dora's sequence here is over; she waits in another campaign of the workspace.
        try f.connection.execute("update contacts set status = 'finished' where id = \(dora)")
        let later = try f.campaign("Later", senders: [setup.sender], followUpDelays: [])
        let doraLater = try f.contacts(later, ["dora"])[0]

        try inbound.memberWrites(ada, "Interested")                        // R2: an acceptance
        try inbound.memberWrites(bob, "Thanks - tell me more about the role")  // R4: a reply
        try inbound.memberWrites(cy, "Not  interested.")                   // R2: a decline
        try inbound.memberWrites(dora, "Please stop writing to me")
        #expect(try inbound.arrived(8))
        #expect(try inbound.inbox("state = 'processed'") == 8)
        #expect(try inbound.responses(ada) == ["interested"] && inbound.responses(bob) == ["reply"])
        #expect(try inbound.responses(cy) == ["not_interested"] && inbound.responses(dora) == ["reply"])
        #expect(try setup.creditBalance == balance + 4)  // R1: every response within 90 days
        #expect(try f.contact(ada).status == "accepted" && f.contact(bob).status == "replied")
        #expect(try f.contact(cy).status == "declined")
        #expect(try f.contact(doraLater) == ("skipped", "the member replied to campaign \(setup.campaign) of the workspace"))

        // The gateway retries: every webhook again changes nothing.
        let jobs = try f.count("select count(*) from all_jobs where kind = 'inbox.process'")
        for row in try f.connection.query("select payload::text as body from gateway_inbox").rows {
            let answer = try inbound.serve.post(try row.decode(String.self, "body"))
            #expect(answer.status == 200 && answer.body.contains(#""status":"duplicate""#), "\(answer)")
        }
        try f.drain()
        #expect(try inbound.inbox() == 8 && f.count("select count(*) from responses") == 4)
        #expect(try f.count("select count(*) from all_jobs where kind = 'inbox.process'") == jobs)
        #expect(try setup.creditBalance == balance + 4)

        // C3: only the accepted contact gets its follow-up; its chat's answer was processed.
        try f.advance("'3 days 1 hour'")
        #expect(try setup.sent("Follow-up 1").map(\.chatID) == [f.message(ada)!.decode(String.self, "chat_id")])
    }

    @Test("Account status webhooks pause the bound account with the reason and resume it, never one an operator paused")
    func accountStatus() throws {
        let inbound = try Inbound()
        let (setup, f) = (inbound.setup, inbound.fixture)
        func status() throws -> (String, String?) {
            let row = try f.connection.queryOne("select status::text, status_reason from sender_accounts where id = \(setup.sender)")
            return (try row.decode(String.self, "status"), try row.decode(String?.self, "status_reason"))
        }
        try setup.double.setAccount("gw-1", DoubleAccount(status: "disconnected"))
        #expect(try inbound.arrived(1, "event = 'account_status'"))
        #expect(try status() == ("paused", "gateway reports CREDENTIALS: the account is disconnected; reconnect it at the gateway"))
        try setup.double.setAccount("gw-1", DoubleAccount(status: "ok"))
        #expect(try inbound.arrived(2, "event = 'account_status'"))
        #expect(try status() == ("active", nil))
        // The same status again after another is a new event, not a replay.
        try setup.double.setAccount("gw-1", DoubleAccount(status: "restricted"))
        #expect(try inbound.arrived(3, "event = 'account_status'"))
        #expect(try status().0 == "paused")
        // An operator's pause stays when the gateway reports the account well.
        try f.connection.execute("select set_account_status(\(setup.sender), 'active')")
        try f.connection.execute("select set_account_status(\(setup.sender), 'paused', 'client on holiday')")
        try setup.double.setAccount("gw-1", DoubleAccount(status: "ok"))
        #expect(try inbound.arrived(4, "event = 'account_status'"))
        #expect(try status() == ("paused", "client on holiday"))
        // The gateway's retry of the latest event is a duplicate.
        let latest = try f.connection.queryOne("select payload::text as body from gateway_inbox order by id desc limit 1")
            .decode(String.self, "body")
        #expect(try inbound.serve.post(latest).body.contains("duplicate"))
        #expect(try inbound.inbox() == 4)
        // An account bound to nothing is kept for operators.
        #expect(try inbound.serve.post(#"{"AccountStatus": {"account_id": "gw-unknown", "account_type": "LINKEDIN", "message": "CREDENTIALS"}}"#).status == 200)
        #expect(try inbound.arrived(1, "gateway_account_id = 'gw-unknown'"))
        #expect(try inbound.inbox("state = 'unmatched' and outcome = 'no sender account is bound to gateway account gw-unknown'") == 1)
    }

    @Test("Wrong or missing secret 401, oversized 413, malformed 400, nothing stored; unknown events and unknown chats are kept for operators; probes; 503 without a database")
    func refusalsAndProbes() throws {
        let inbound = try Inbound(register: false, serveArguments: ["--max-body-bytes", "2048"])
        let (serve, f) = (inbound.serve, inbound.fixture)
        let message = #"{"event": "message_received", "message_id": "m-1", "chat_id": "chat-nobody-knows", "account_id": "gw-1", "message": "hi", "sender": {"attendee_provider_id": "ACoAAX"}}"#
        let wrong = try serve.post(message, secret: "not-the-secret")
        #expect(wrong.status == 401 && wrong.body.contains("missing or wrong Unipile-Auth header"))
        #expect(try serve.post(message, secret: .some(nil)).status == 401)
        #expect(try serve.post(message, secret: ServeProcess.secret + "x").status == 401)
        let large = try serve.post(#"{"event": "message_received", "message": "\#(String(repeating: "x", count: 3_000))"}"#)
        #expect(large.status == 413 && large.body.contains("larger than 2048 bytes"))
        let malformed = try serve.post(#"{"event": "message_received", "#)
        #expect(malformed.status == 400 && malformed.body.contains("malformed JSON"), "\(malformed)")
        let array = try serve.post("[1, 2]")
        #expect(array.status == 400 && array.body.contains("must be a JSON object"))
        #expect(try inbound.inbox() == 0)

        #expect(try serve.post(message).status == 200)
        #expect(try serve.post(#"{"event": "new_relation", "account_id": "gw-1", "user_provider_id": "ACoAAY"}"#).status == 200)
        #expect(try inbound.arrived(2))
        #expect(try inbound.inbox("state = 'unmatched' and outcome = 'no message of inmailq was sent in chat chat-nobody-knows'") == 1)
        #expect(try inbound.inbox("state = 'unknown_event' and event = 'new_relation'") == 1)
        let listed = try AdminScriptTests().psql(f.db, "inbox", [:])
        #expect(listed.status == 0 && listed.output.contains("chat-nobody-knows") && listed.output.contains("new_relation"), "\(listed.output)")

        #expect(try serve.get("/healthz").status == 200)
        let ready = try serve.get("/readyz")
        #expect(ready.status == 200 && ready.body.contains("ready"))
        // The database goes away: the gateway is told to retry later.
        let admin = try Connection(try TestServer.admin.get())
        try admin.runScript("drop database \(quoteIdentifier(f.db.name)) with (force)")
        let refused = try serve.post(#"{"event": "message_received", "message_id": "m-2", "chat_id": "c", "message": "hi"}"#)
        #expect(refused.status == 503 && refused.body.contains("retry later"))
        #expect(try serve.get("/readyz").status == 503)
        #expect(try serve.get("/healthz").status == 200)
    }

    @Test("serve killed after storing a webhook and before answering: the gateway's retry lands once")
    func killedBetweenCommitAndAnswer() throws {
        let setup = try GatewayCourierTests.Setup()
        let dying = try ServeProcess(databaseURL: setup.fixture.db.url, environment: ["INMAILQ_FAULT_DIE_AFTER_COMMIT": "1"])
        let inbound = try Inbound(setup: setup, serve: dying)
        try setup.double.setAccount("gw-1", DoubleAccount(status: "disconnected"))
        #expect(dying.process.wait(timeout: .seconds(30)) != nil)  // it died after its commit
        #expect(try inbound.inbox() == 1)
        // A new serve on the same address takes the gateway's retry.
        let replacement = try ServeProcess(databaseURL: setup.fixture.db.url, port: dying.port)
        let deliveries = try eventually(timeout: .seconds(30)) {
            try JSONDecoder().decode([WebhookDelivery].self, from: setup.double.request(.GET, "/_double/webhooks")).first?.delivered == true
        }
        #expect(deliveries)
        let delivery = try #require(try JSONDecoder().decode([WebhookDelivery].self, from: setup.double.request(.GET, "/_double/webhooks")).first)
        #expect(delivery.attempts >= 2)
        try setup.fixture.drain()
        #expect(try inbound.inbox() == 1 && inbound.inbox("state = 'processed'") == 1)
        #expect(try setup.fixture.count("select count(*) from all_jobs where kind = 'inbox.process'") == 1)
        #expect(try setup.fixture.count("select count(*) from sender_accounts where status = 'paused'") == 1)
        withExtendedLifetime(replacement) {}
    }

    @Test("R4: a reply whose webhook was lost holds the follow-up: found by listing the chat, applied, the follow-up cancelled")
    func lostReplyWebhookStopsTheFollowUp() throws {
        let inbound = try Inbound(register: false)  // no webhook reaches inmailq
        let (setup, f) = (inbound.setup, inbound.fixture)
        let ada = try setup.start(["ada"])[0]
        try f.drain()
        _ = try f.respond(ada, .acceptedDefault)  // R3: follow-ups go on
        try inbound.memberWrites(ada, "Actually, I found a job. Please stop.")
        try f.advance("'3 days 1 hour'")
        #expect(try setup.sent("Follow-up 1").isEmpty)
        #expect(try inbound.inbox("payload->>'found_by' is not null and outcome like 'reply to message%'") == 1)
        #expect(try inbound.responses(ada) == ["accepted_default", "reply"])
        try f.advance("'2 hours'")  // the follow-up's retry finds the sequence stopped
        #expect(try setup.sent("Follow-up 1").isEmpty)
        #expect(try f.contact(ada).status == "replied")
        #expect(try f.count("select count(*) from reservations where state = 'held'") == 0)
        #expect(try f.count("select count(*) from all_jobs where kind = 'inmail.follow_up' and state = 'cancelled'") == 1)
    }

    @Test("R4: a reply recorded while the follow-up is on its way stops it in the statement before the request")
    func replyDuringTheFollowUpsDelivery() throws {
        let inbound = try Inbound(register: false)
        let (setup, f) = (inbound.setup, inbound.fixture)
        let ada = try setup.start(["ada"])[0]
        try f.drain()
        _ = try f.respond(ada, .acceptedDefault)
        var faults = GatewayFaults()
        faults.latencyMilliseconds = 600  // the listing before the follow-up takes a while (the client waits 800 ms)
        try setup.double.setFaults(faults)
        let listed = "GET /api/v1/chats/{id}/messages 200"
        let before = try setup.double.requestCounts[listed] ?? 0
        let other = try f.db.connect()
        let fixture = Unchecked(f)
        let advancing = Thread { _ = try? fixture.value.advance("'3 days 1 hour'") }
        advancing.start()
        #expect(try eventually(timeout: .seconds(30)) { try setup.double.requestCounts[listed] ?? 0 > before })
        let step0 = try #require(try f.message(ada)).decode(Int64.self, "id")
        _ = try Responses.record(message: step0, kind: .reply, text: "No thanks", on: other)
        #expect(try eventually(timeout: .seconds(30)) {
            try other.queryOne("select count(*) as n from all_jobs where kind = 'inmail.follow_up' and state = 'cancelled'").decode(Int.self, "n") == 1
        })
        while advancing.isExecuting { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try setup.sent("Follow-up 1").isEmpty)
        let reason = try other.queryOne("select errors::text as e from all_jobs where kind = 'inmail.follow_up'").decode(String.self, "e")
        #expect(reason.contains("contact is replied since the job began"), "\(reason)")
    }
}

/// A value handed to one other thread that alone uses it meanwhile.
final class Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
