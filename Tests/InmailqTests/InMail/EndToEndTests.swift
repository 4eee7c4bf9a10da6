import Foundation
import InMail
import Postgres
import Queue
import Testing

/// The whole cluster: worker processes, the sandbox courier with its simulated responses,
/// renewals by cron, weeks of business time, and a worker killed mid-run.
@Suite("End to end")
struct EndToEndTests {
    @Test(.timeLimit(.minutes(10)))
    func threeWorkersThirtyAccountsFifteenHundredContactsThreeWeeksOneKilled() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let accounts = AccountFixture(connection: connection)
        try connection.execute("update sandbox_settings set seed = 20261122")
        // A billing cycle starts ten days in: the cron's renewal falls inside the run.
        let anchor = try connection.query("select ((clock_now() at time zone 'UTC')::date - interval '1 month' + interval '10 days')::date::text as d")
            .first!.decode(String.self, "d")
        let plans = ["sales_navigator", "premium_business", "premium_career", "recruiter_lite", "sales_navigator_core"]
        let zones = ["UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Australia/Sydney"]
        var campaigns: [Int64] = []
        for client in 0..<3 {
            let workspace = try accounts.workspace("Client \(client)")
            var pool: [Int64] = []
            for index in 0..<10 {
                let account = try accounts.account(
                    plan: plans[(client * 10 + index) % plans.count], workspace: workspace, timeZone: zones[index % zones.count],
                    anchor: anchor, dailyLimit: 10)
                try accounts.renewCurrentCycle(account)
                pool.append(account)
            }
            let campaign = try Campaigns.create(workspace: workspace, name: "Outreach", on: connection)
            try Campaigns.setStep(campaign: campaign, position: 0, subject: "{{first_name|Hello}}, a question", body: "Hi {{first_name|there}}, how does {{company|your team}} hire?", delayDays: nil, on: connection)
            for (position, days) in [(1, 3), (2, 4), (3, 5)] {
                try Campaigns.setStep(campaign: campaign, position: position, subject: nil, body: "Follow-up \(position), {{first_name|friend}}", delayDays: days, on: connection)
            }
            for account in pool { try Campaigns.addSender(campaign: campaign, account: account, on: connection) }
            let links = (0..<500).map { (line: $0 + 1, text: "https://www.linkedin.com/in/member-\(client)-\($0)") }
            #expect(try Contacts.add(campaign: campaign, links: links, on: connection).added == 500)
            campaigns.append(campaign)
        }
        try connection.execute(
            """
            update contacts set first_name = case when id % 4 = 0 then null else 'Member' || id end,
                                company = 'Company ' || (id % 50),
                                open_profile = id % 7 = 0, opted_out = id % 23 = 0,
                                connection_degree = case when id % 13 = 0 then 1 else 2 end
            """)
        for campaign in campaigns { try Campaigns.activate(campaign: campaign, on: connection) }

        var workers = try (0..<3).map { _ in
            try InmailqProcess.start(["worker", "--database-url", db.url, "--concurrency", "8", "--lease", "2", "--log-level", "warning"])
        }
        defer {
            for worker in workers where worker.child.exitStatusIfEnded() == nil {
                worker.child.signal(SIGKILL)
                worker.child.wait()
            }
        }
        var killedWhileBusy = false
        for halfDay in 0..<42 {  // three weeks in half days
            if halfDay == 14 {
                // Mid-run, while it holds jobs: the worker dies without a word.
                let killed = try killWhileHoldingJobs(workers[0], connection)
                killedWhileBusy = killed.busy
                #expect(killed.status != 0)
                workers.removeFirst()
            }
            #expect(try waitUntilQuiet(connection, workers: workers), "half day \(halfDay) never settled")
            try QueueClock.advance(by: .seconds(43_200), on: connection)
            if halfDay % 2 == 0 {  // the cron's daily renewal run
                let scheduled = try InmailqProcess.run(["renewals", "schedule", "--database-url", db.url, "--log-level", "warning"])
                #expect(scheduled.status == 0, "\(scheduled.output)")
            }
        }
        #expect(try waitUntilQuiet(connection, workers: workers))
        for worker in workers { worker.child.signal(SIGTERM) }
        for worker in workers {
            #expect(worker.wait(timeout: .seconds(30)) == 0, "worker output: \(worker.output.suffix(2000))")
        }
        // The killed worker's jobs were rescued after their lease and finished by the others.
        #expect(killedWhileBusy)
        #expect(try count("select count(*) from all_jobs where errors @> '[{\"action\": \"rescue\"}]'", connection) > 0)

        // No member got two messages for the same step, and the sandbox delivered each key once:
        // every delivered key is a recorded message with the same receipt.
        #expect(try count("select count(*) from (select member_key, step from messages group by 1, 2 having count(*) > 1) d", connection) == 0)
        #expect(try count("select count(*) from sandbox_messages where receipt is not null", connection)
                == count("select count(*) from messages where state = 'sent'", connection))
        #expect(try count(
            """
            select count(*) from sandbox_messages s left join messages m on m.delivery_key = s.delivery_key
            where s.receipt is not null and (m.state is distinct from 'sent' or m.receipt is distinct from s.receipt)
            """, connection) == 0)
        // No account exceeded a limit in any of its local days; every ledger balances within its cap.
        #expect(try accountsOverADailyLimit(connection) == 0)
        #expect(try accountsWithUnbalancedLedgers(connection) == 0)
        // Every contact is final, or waiting with a reason.
        #expect(try count("select count(*) from contact_progress where reason is null", connection) == 0)
        #expect(try count("select count(*) from contacts where status not in ('waiting', 'sent', 'accepted', 'declined', 'replied', 'finished', 'skipped', 'failed')", connection) == 0)
        // The campaign did its job: InMails, free ones, 1st-degree messages, responses, credit
        // back, follow-ups, the renewal; S2 skipped the opted-out; nothing was discarded.
        let report = try connection.query(
            """
            select sum(inmails_sent)::int as inmails, sum(free_inmails)::int as free, sum(connection_messages)::int as connections,
                   sum(accepted)::int as accepted, sum(declined)::int as declined, sum(responders)::int as responders,
                   sum(follow_ups_sent)::int as follow_ups, sum(credits_back)::int as back
            from campaign_report
            """).first!
        for column in ["inmails", "free", "connections", "accepted", "declined", "responders", "follow_ups", "back"] {
            #expect(try report.decode(Int.self, column) > 0, "\(column)")
        }
        #expect(try count("select count(*) from contacts where status = 'skipped' and reason = 'opted out of InMail (S2)'", connection) >= 1_500 / 23)
        #expect(try count("select count(*) from renewal_cycles where granted > 0 and renewed_at > (select min(sent_at) from messages)", connection) > 0)
        #expect(try count("select count(*) from job_history where state = 'discarded'", connection) == 0)
        #expect(try count("select count(*) from reservations where state = 'held' and not exists (select 1 from jobs j where j.unique_key = reservations.delivery_key)", connection) == 0)
    }
}
