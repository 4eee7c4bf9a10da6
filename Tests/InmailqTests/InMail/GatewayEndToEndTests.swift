import Foundation
import GatewayDouble
import InMail
import Postgres
import Queue
import Testing

/// The whole cluster over real HTTP: worker processes delivering through the gateway courier
/// to the gateway double, which injects every fault class at random, and a worker killed while
/// its requests are in flight.
@Suite("End to end through the gateway")
struct GatewayEndToEndTests {
    @Test(.timeLimit(.minutes(10)))
    func threeWorkersThirtyAccountsFaultsEverywhereOneKilled() throws {
        let key = "e2e-\(UInt32.random(in: 0...UInt32.max))"
        let double = try GatewayDoubleProcess(apiKey: key, credits: 1_000, seed: 20261123)
        let db = try TestDatabase()
        let connection = try db.connect()
        let accounts = AccountFixture(connection: connection)
        let plans = ["sales_navigator", "premium_business", "premium_career", "recruiter_lite", "sales_navigator_core"]
        var campaigns: [Int64] = []
        for client in 0..<3 {
            let workspace = try accounts.workspace("Client \(client)")
            var pool: [Int64] = []
            for index in 0..<10 {
                let account = try accounts.account(plan: plans[(client * 10 + index) % plans.count], workspace: workspace, dailyLimit: 10)
                try accounts.renewCurrentCycle(account)
                try connection.execute("select connect_gateway_account(\(account), \("li-\(account)"), interval '0')")
                pool.append(account)
            }
            let campaign = try Campaigns.create(workspace: workspace, name: "Outreach", on: connection)
            try Campaigns.setStep(campaign: campaign, position: 0, subject: "A question", body: "Hi {{first_name|there}}, how do you hire?", delayDays: nil, on: connection)
            try Campaigns.setStep(campaign: campaign, position: 1, subject: nil, body: "Follow-up for {{first_name|you}}", delayDays: 3, on: connection)
            for account in pool { try Campaigns.addSender(campaign: campaign, account: account, on: connection) }
            let links = (0..<100).map { (line: $0 + 1, text: "https://www.linkedin.com/in/gw-member-\(client)-\($0)") }
            #expect(try Contacts.add(campaign: campaign, links: links, on: connection).added == 100)
            campaigns.append(campaign)
        }
        // Every text names its contact, so the double's log tells each delivery apart.
        try connection.execute("update contacts set first_name = 'Member' || id, open_profile = id % 7 = 0")
        for row in try connection.query("select member_key from contacts where open_profile").rows {
            let slug = String(try row.decode(String.self, "member_key").dropFirst(3))
            try double.setMember(slug, DoubleMember(openProfile: true))
        }
        // Each account's LinkedIn count starts as its ledger's.
        for row in try connection.query("select id, credit_balance(id) as n, p.gateway_api from sender_accounts a join plans p on p.code = a.plan_code").rows {
            let credits = try row.decode(Int.self, "n")
            let api = try row.decode(String.self, "gateway_api")
            try double.setAccount("li-\(try row.decode(Int64.self, "id"))", DoubleAccount(
                premium: api == "classic" ? credits : nil, salesNavigator: api == "sales_navigator" ? credits : nil,
                recruiter: api == "recruiter" ? credits : nil))
        }
        var faults = GatewayFaults()
        faults.rates = [
            "too_many_requests": 0.03, "server_error": 0.03, "slow_answer": 0.02, "drop_after_send": 0.03,
            "insufficient_credits": 0.01, "cannot_resend_yet": 0.01, "not_allowed_inmail": 0.01, "disconnected_account": 0.005,
        ]
        faults.next = GatewayFault.allCases.filter { $0 != .unprocessable }  // each class at least once, then at random
        faults.latencyMilliseconds = 50
        faults.slowMilliseconds = 1_500
        try double.setFaults(faults)
        for campaign in campaigns { try Campaigns.activate(campaign: campaign, on: connection) }

        let environment = ["INMAILQ_GATEWAY_URL": double.url, "INMAILQ_GATEWAY_API_KEY": key]
        var workers = try (0..<3).map { _ in
            try InmailqProcess.start(
                ["worker", "--database-url", db.url, "--courier", "gateway", "--gateway-timeout", "1", "--gateway-rps", "500",
                 "--concurrency", "8", "--lease", "2", "--log-level", "warning"], environment: environment)
        }
        defer {
            for worker in workers where worker.child.exitStatusIfEnded() == nil {
                worker.child.signal(SIGKILL)
                worker.child.wait()
            }
        }
        var killedWhileBusy = false
        for halfDay in 0..<9 {
            if halfDay == 1 {
                let killed = try killWhileHoldingJobs(workers[0], connection)
                killedWhileBusy = killed.busy
                #expect(killed.status != 0)
                workers.removeFirst()
            }
            #expect(try waitUntilQuiet(connection, workers: workers), "half day \(halfDay) never settled")
            // An operator resumes accounts the gateway reported disconnected; members answer some InMails.
            try connection.execute("select set_account_status(id, 'active') from sender_accounts where status = 'paused'")
            try connection.execute(
                """
                select record_response(m.id, 'accepted_default') from messages m
                where m.state = 'sent' and m.step = 0 and m.responded_at is null and m.id % 3 = 0
                """)
            try QueueClock.advance(by: .seconds(43_200), on: connection)
        }
        #expect(try waitUntilQuiet(connection, workers: workers))
        // Retries still waiting for their backoff (an answer lost on the last half day, whose
        // retry will find the message at the gateway) run, without new faults, before the
        // counts below.
        try double.setFaults(GatewayFaults())
        try QueueClock.advance(by: .seconds(7_200), on: connection)
        #expect(try waitUntilQuiet(connection, workers: workers))
        for worker in workers { worker.child.signal(SIGTERM) }
        for worker in workers {
            #expect(worker.wait(timeout: .seconds(30)) == 0, "worker output: \(worker.output.suffix(2000))")
        }
        #expect(killedWhileBusy)

        // The double received each delivery at most once, lost answers included: no two
        // accepted messages of an account to a member carry the same text.
        let received = try double.messages.filter(\.isSender)
        #expect(received.count > 300)
        #expect(Dictionary(grouping: received) { "\($0.accountID)|\($0.attendeeID)|\($0.text)" }.values.allSatisfy { $0.count == 1 })
        #expect(received.contains { !$0.answered }, "no answer was lost: the faults did not happen")
        // Every message the double accepted is recorded as sent with its receipt, unless it is
        // still listed as stuck for an operator.
        let receipts = Set(try connection.query("select receipt from messages where state = 'sent'").rows.map { try $0.decode(String.self, "receipt") })
        let unrecorded = received.filter { !receipts.contains($0.id) }.count
        #expect(unrecorded <= (try count("select count(*) from stuck_sends", connection)))
        #expect(receipts.count == received.count - unrecorded)
        let requests = try double.requestCounts
        for status in ["429", "500", "401", "422"] {
            #expect(requests.contains { $0.key.hasSuffix(" \(status)") && $0.key.hasPrefix("POST") }, "no \(status) answered")
        }
        // No account exceeded a limit in any of its local days; every ledger balances within its cap.
        #expect(try accountsOverADailyLimit(connection) == 0)
        #expect(try accountsWithUnbalancedLedgers(connection) == 0)
        // Every contact has a status and a reason.
        #expect(try count("select count(*) from contact_progress where reason is null", connection) == 0)
        #expect(try count("select count(*) from messages where step = 1 and state = 'sent'", connection) > 0)
    }
}
