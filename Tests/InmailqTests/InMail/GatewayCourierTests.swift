import Foundation
import Gateway
import GatewayDouble
import InMail
import Postgres
import Queue
import Testing

/// The gateway courier over real HTTP against the gateway double (a local server speaking the
/// gateway's documented API): one test per error class, the first message and follow-ups, and
/// exactly once across the wire when an answer is lost.
@Suite("Gateway courier")
struct GatewayCourierTests {
    static let key = "test-key-\(UInt32.random(in: 0...UInt32.max))"

    /// A fixture delivering through the double; the sender is bound to gateway account `gw-1`.
    final class Setup {
        let double: GatewayDoubleProcess
        let fixture: OutreachFixture
        let sender: Int64
        let campaign: Int64
        let client: GatewayClient

        init(plan: String = "sales_navigator", bind: Bool = true, credits: Int = 100) throws {
            double = try GatewayDoubleProcess(apiKey: GatewayCourierTests.key, credits: credits)
            var configuration = try GatewayConfiguration(baseURL: double.url, apiKey: GatewayCourierTests.key)
            configuration.requestTimeout = .milliseconds(800)
            let client = GatewayClient(configuration)
            self.client = client
            do {
                fixture = try OutreachFixture(courier: { GatewayCourier(client: client, pool: $0) })
                sender = try fixture.sender(plan: plan)
                if bind {
                    try fixture.connection.execute("select connect_gateway_account(\(sender), 'gw-1', interval '0')")
                }
                campaign = try fixture.campaign(senders: [sender])
            } catch {
                client.shutdown()
                throw error
            }
        }

        deinit {
            client.shutdown()
        }

        func start(_ names: [String], set assignments: SQL? = nil) throws -> [Int64] {
            let contacts = try fixture.contacts(campaign, names, set: assignments)
            try Campaigns.activate(campaign: campaign, on: fixture.connection)
            return contacts
        }

        func sent(_ text: String) throws -> [DoubleMessage] { try double.messages.filter { $0.text.contains(text) } }

        var creditBalance: Int {
            get throws { try fixture.count("select credit_balance(\(sender))") }
        }
    }

    @Test("S3, C3: an InMail starts a chat through the plan's product with its subject; follow-ups go into that chat")
    func firstMessageAndFollowUps() throws {
        let setup = try Setup(plan: "sales_navigator")
        let credits = try setup.creditBalance
        let (contact, friend) = try { let ids = try setup.start(["ada-lovelace", "old-friend"]); return (ids[0], ids[1]) }()
        try setup.fixture.connection.execute("update contacts set connection_degree = 1 where id = \(friend)")
        try setup.double.setMember("old-friend", DoubleMember(firstDegree: true))
        try setup.fixture.connection.execute("delete from jobs where args->>'contact_id' = \(String(friend))")
        try setup.fixture.connection.execute("select enqueue_sends(\(setup.campaign))")
        try setup.fixture.drain()

        let inmail = try #require(try setup.double.messages.first { $0.attendeeID == GatewayDoubleServer.providerID(for: "ada-lovelace") })
        #expect(inmail.inmail && inmail.api == "sales_navigator" && inmail.accountID == "gw-1")
        #expect(inmail.subject == "A question for you" && inmail.text.hasPrefix("Hello there"))
        let message = try #require(try setup.fixture.message(contact))
        #expect(try message.decode(String.self, "state") == "sent")
        #expect(try message.decode(String?.self, "chat_id") == inmail.chatID)
        #expect(try message.decode(String?.self, "receipt") == inmail.id)
        #expect(try setup.creditBalance == credits - 1)
        // S3: the 1st-degree connection gets a regular message, no InMail option, no credit.
        let regular = try #require(try setup.double.messages.first { $0.attendeeID == GatewayDoubleServer.providerID(for: "old-friend") })
        #expect(!regular.inmail && regular.subject == nil)
        // Members are resolved once and cached.
        #expect(try setup.fixture.count("select count(*) from gateway_members where gateway_account_id = 'gw-1'") == 2)

        _ = try setup.fixture.respond(contact, .acceptedDefault)
        try setup.fixture.advance("'3 days 1 hour'")
        let followUp = try #require(try setup.sent("Follow-up 1").first)
        #expect(followUp.chatID == inmail.chatID && !followUp.inmail)
        #expect(try setup.double.requestCounts["GET /api/v1/users/{id} 200"] == 2)
        #expect(try setup.double.requestCounts["POST /api/v1/chats/{id}/messages 201"] == 1)
    }

    @Test("An account bound to no gateway account is refused at claim time; nothing reaches the gateway")
    func unboundAccountRefusedAtClaim() throws {
        let setup = try Setup(bind: false)
        let contact = try setup.start(["grace-hopper"])[0]
        try setup.fixture.drain()
        #expect(try setup.double.messages.isEmpty)
        #expect(try setup.fixture.contact(contact).status == "waiting")
        #expect(try setup.fixture.count("select count(*) from jobs where state = 'scheduled' and run_at > now() + interval '10 minutes'") == 1)
        #expect(try setup.fixture.count("select count(*) from reservations") == 0)

        try setup.fixture.connection.execute("select connect_gateway_account(\(setup.sender), 'gw-1', interval '0')")
        try setup.fixture.advance("'2 hours'")
        #expect(try setup.double.messages.count == 1)
    }

    @Test("429: the account waits Retry-After, nothing is spent, then it goes")
    func tooManyRequests() throws {
        let setup = try Setup()
        var faults = GatewayFaults()
        faults.next = [.tooManyRequests]
        faults.retryAfterSeconds = 120
        try setup.double.setFaults(faults)
        let credits = try setup.creditBalance
        let contact = try setup.start(["alan-turing"])[0]
        try setup.fixture.drain()
        #expect(try setup.double.messages.isEmpty)
        #expect(try setup.creditBalance == credits)
        #expect(try setup.fixture.count("select count(*) from reservations where state = 'held'") == 0)
        #expect(try setup.fixture.count("select count(*) from sender_accounts where id = \(setup.sender) and next_send_at >= clock_now() + interval '110 seconds'") == 1)
        try setup.fixture.advance("'3 minutes'")
        #expect(try setup.double.messages.count == 1)
        #expect(try setup.fixture.contact(contact).status == "sent")
    }

    @Test("5xx: retried with backoff, the reservation kept; sent once")
    func serverError() throws {
        let setup = try Setup()
        var faults = GatewayFaults()
        faults.next = [.serverError]
        try setup.double.setFaults(faults)
        let contact = try setup.start(["edsger-dijkstra"])[0]
        let outcomes = try setup.fixture.drain()
        #expect(outcomes[Outreach.sendKind]?.contains { if case .failed = $0 { true } else { false } } == true)
        #expect(try setup.fixture.count("select count(*) from reservations where state = 'held'") == 1)
        try setup.fixture.advance("'10 minutes'")
        #expect(try setup.double.messages.count == 1)
        #expect(try setup.fixture.contact(contact).status == "sent")
    }

    @Test("Exactly once across the wire: a dropped answer and a late one are found at the gateway, not sent again")
    func lostAnswersAreReconciled() throws {
        for fault in [GatewayFault.dropAfterSend, .slowAnswer] {
            let setup = try Setup()
            var faults = GatewayFaults()
            faults.next = [fault]
            faults.slowMilliseconds = 1_500  // past the client's 800 ms
            try setup.double.setFaults(faults)
            let contact = try setup.start(["barbara-liskov"])[0]
            try setup.fixture.drain()
            let first = try setup.double.messages
            #expect(first.count == 1 && first[0].answered == false, "\(fault)")
            #expect(try setup.fixture.message(contact)?.decode(String.self, "state") == "sending")
            try setup.fixture.advance("'10 minutes'")
            #expect(try setup.double.messages.count == 1, "\(fault): sent again")
            let message = try #require(try setup.fixture.message(contact))
            #expect(try message.decode(String.self, "state") == "sent")
            #expect(try message.decode(String?.self, "receipt") == first.first?.id)
            #expect(try message.decode(String?.self, "chat_id") == first.first?.chatID)
        }
    }

    @Test("S8: insufficient credits stop credit InMails on the account, resync the ledger to LinkedIn's count, free InMails go on")
    func insufficientCredits() throws {
        let setup = try Setup()
        try setup.double.setAccount("gw-1", DoubleAccount(salesNavigator: 0))
        try setup.double.setMember("open-one", DoubleMember(openProfile: true))
        // was-open: imported as an open profile, but LinkedIn no longer takes InMail from it free.
        let ids = try setup.start(["paid-one", "open-one", "was-open"])
        try setup.fixture.connection.execute("update contacts set open_profile = true where id in (\(ids[1]), \(ids[2]))")
        try setup.fixture.connection.execute("delete from jobs")
        try setup.fixture.connection.execute("select enqueue_sends(\(setup.campaign))")
        try setup.fixture.drain()
        #expect(try setup.double.messages.map(\.attendeeID) == [GatewayDoubleServer.providerID(for: "open-one")])
        #expect(try setup.fixture.contact(ids[0]).status == "waiting")
        #expect(try setup.fixture.contact(ids[1]).status == "sent")
        #expect(try setup.fixture.contact(ids[2]) == ("skipped", "LinkedIn asked a credit for a free InMail: the profile is no longer open (S1)"))
        #expect(try setup.creditBalance == 0)
        #expect(try setup.fixture.count("select count(*) from credit_ledger where account_id = \(setup.sender) and entry = 'reconcile'") >= 1)
        #expect(try setup.fixture.count("select count(*) from reservations where state = 'held'") == 0)
    }

    @Test("S4: LinkedIn's cannot-resend-yet skips the contact and spends nothing")
    func cannotResendYet() throws {
        let setup = try Setup()
        var faults = GatewayFaults()
        faults.next = [.cannotResendYet]
        try setup.double.setFaults(faults)
        let credits = try setup.creditBalance
        let contact = try setup.start(["ken-thompson"])[0]
        try setup.fixture.drain()
        #expect(try setup.fixture.contact(contact) == ("skipped", "LinkedIn: an earlier InMail from this sender awaits the member's answer (S4)"))
        #expect(try setup.creditBalance == credits)
        #expect(try setup.fixture.message(contact) == nil)
    }

    @Test("A member who takes no InMail is skipped; nothing spent")
    func recipientUnreachable() throws {
        let setup = try Setup()
        try setup.double.setMember("closed-door", DoubleMember(unreachable: true))
        let credits = try setup.creditBalance
        let contact = try setup.start(["closed-door"])[0]
        try setup.fixture.drain()
        #expect(try setup.fixture.contact(contact).status == "skipped")
        #expect(try setup.creditBalance == credits)
        #expect(try setup.double.messages.isEmpty)
    }

    @Test("A7-like: a disconnected account is paused with the gateway's reason until an operator resumes it")
    func disconnectedAccount() throws {
        let setup = try Setup()
        try setup.double.setAccount("gw-1", DoubleAccount(salesNavigator: 10, status: "disconnected"))
        let contact = try setup.start(["linus-torvalds"])[0]
        try setup.fixture.drain()
        let account = try #require(try setup.fixture.connection.query("select status::text, status_reason from sender_accounts where id = \(setup.sender)").first)
        #expect(try account.decode(String.self, "status") == "paused")
        #expect(try account.decode(String?.self, "status_reason")?.contains("Disconnected account") == true)
        #expect(try setup.fixture.contact(contact).status == "waiting")

        try setup.double.setAccount("gw-1", DoubleAccount(salesNavigator: 10))
        try setup.fixture.connection.execute("select set_account_status(\(setup.sender), 'active')")
        try setup.fixture.drain()
        #expect(try setup.fixture.contact(contact).status == "sent")
        #expect(try setup.fixture.count("select count(*) from sender_accounts where id = \(setup.sender) and status_reason is null") == 1)
    }

    @Test("An unknown error is retried, then fails the contact with the gateway's words")
    func unknownError() throws {
        let setup = try Setup()
        var faults = GatewayFaults()
        faults.rates = [GatewayFault.unprocessable.rawValue: 1.0]
        try setup.double.setFaults(faults)
        let contact = try setup.start(["dennis-ritchie"])[0]
        for _ in 0..<30 where try setup.fixture.contact(contact).status == "waiting" {
            try setup.fixture.advance("'2 hours'")
        }
        let (status, reason) = try setup.fixture.contact(contact)
        #expect(status == "failed")
        #expect(reason?.contains("LinkedIn rejected the request") == true, "\(reason ?? "")")
        #expect(try setup.double.messages.isEmpty)
        #expect(try setup.fixture.count("select count(*) from reservations where state = 'held'") == 0)
    }

    @Test("The balance duty books LinkedIn's count as a reconcile entry, both ways")
    func balanceSync() throws {
        let setup = try Setup()
        let courier = GatewayCourier(client: setup.client, pool: ConnectionPool(setup.fixture.db.configuration, capacity: 1))
        let sync = GatewayCreditSync(courier: courier)
        let credits = try setup.creditBalance
        try setup.double.setAccount("gw-1", DoubleAccount(salesNavigator: credits - 3))
        #expect(try sync.runOnce(on: setup.fixture.connection) == 1)
        #expect(try setup.creditBalance == credits - 3)
        try setup.double.setAccount("gw-1", DoubleAccount(salesNavigator: credits + 2))
        #expect(try sync.runOnce(on: setup.fixture.connection) == 1)
        #expect(try setup.creditBalance == credits + 2)
        #expect(try sync.runOnce(on: setup.fixture.connection) == 0)
        #expect(try setup.fixture.count(
            "select count(*) from credit_ledger where account_id = \(setup.sender) and entry = 'reconcile'") == 2)
    }

    @Test("Bad gateway settings fail the worker at start with one clear line, the key never shown")
    func badConfiguration() throws {
        let db = try TestDatabase()
        let double = try GatewayDoubleProcess(apiKey: Self.key)
        let port = double.url.split(separator: ":").last!
        let secret = "sk-wrong-\(UInt32.random(in: 0...UInt32.max))"
        let cases: [([String: String], String)] = [
            (["INMAILQ_GATEWAY_API_KEY": secret], "the gateway's base URL is needed in INMAILQ_GATEWAY_URL"),
            (["INMAILQ_GATEWAY_URL": "ftp://example.com", "INMAILQ_GATEWAY_API_KEY": secret], "is not an http:// or https:// URL"),
            (["INMAILQ_GATEWAY_URL": "http://127.0.0.1:\(port)"], "the gateway's API key is needed"),
            (["INMAILQ_GATEWAY_URL": "http://127.0.0.1:\(port)", "INMAILQ_GATEWAY_API_KEY": secret], "refused or did not answer: Missing credentials"),
        ]
        for (environment, expected) in cases {
            var full = environment
            for name in ["INMAILQ_GATEWAY_URL", "INMAILQ_GATEWAY_API_KEY"] where full[name] == nil { full[name] = "" }
            let run = try InmailqProcess.run(["worker", "--courier", "gateway", "--database-url", db.url], environment: full)
            #expect(run.status != 0)
            #expect(run.output.contains(expected), "\(run.output)")
            #expect(!run.output.contains(secret))
        }
        #expect(try count("select count(*) from all_jobs where state = 'running'", db.connect()) == 0)
    }
}

/// `--gateway-rps`: the fleet's permits come from one token bucket in the database.
@Suite("Gateway request budget")
struct GatewayRequestBudgetTests {
    @Test("All takers together never get more than one second's burst plus the rate over the time they asked")
    func bucketHoldsTheRate() throws {
        let db = try TestDatabase()
        let sessions = try (0..<3).map { _ in try db.connect() }
        let start = ContinuousClock.now
        var granted = 0
        var calls = 0
        while ContinuousClock.now - start < .milliseconds(1_500) {
            for session in sessions {
                granted += try session.queryOne("select gateway_take_requests(4, 20) as n").decode(Int.self, "n")
                calls += 1
            }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        #expect(granted <= 20 + Int((20 * elapsed).rounded(.up)) + 1, "\(granted) permits in \(elapsed) s")
        #expect(granted >= 20, "the first second's burst was not granted: \(granted)")
        #expect(calls * 4 > granted, "every request was granted: the bucket did not limit")
    }
}
