import Foundation
import InMail
import Postgres
import Queue
import Testing

/// Real worker processes racing for the same accounts through several simulated days.
@Suite("Racing workers")
struct RaceTests {
    @Test(.timeLimit(.minutes(5)))
    func limitsAndCreditsHoldWhenFourProcessesOfEightRaceForFiftyAccountsThroughSimulatedDays() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let f = AccountFixture(connection: connection)
        let zones = ["UTC", "America/New_York", "Asia/Tokyo", "Europe/Paris", "Australia/Sydney"]
        // The next billing cycle starts two days from now: a renewal falls inside the run.
        let anchor = try connection.query("select ((clock_now() at time zone 'UTC')::date - interval '1 month' + interval '2 days')::date::text as d").first!.decode(String.self, "d")
        let workspace = try f.workspace()
        var accounts: [Int64] = []
        var jobs: [NewJob] = []
        for index in 0..<50 {
            let account = try f.account(plan: "premium_career", workspace: workspace, timeZone: zones[index % zones.count], anchor: anchor, dailyLimit: 10)
            try f.renewCurrentCycle(account)  // 5 credits: 4 spendable above the reserve
            accounts.append(account)
            for n in 0..<30 {
                let request = SendRequest(accountID: account, deliveryKey: "race:\(account):\(n)", channel: .inmail, usesCredit: n % 3 != 0)
                var args = try JSONSerialization.jsonObject(with: Data(try JSONText(encoding: request).text.utf8)) as! [String: Any]
                args["fails"] = n % 10 == 7
                let text = String(decoding: try JSONSerialization.data(withJSONObject: args), as: UTF8.self)
                jobs.append(NewJob(kind: CreditDrill.kind, args: JSONText(text), partitionKey: String(account)))
            }
        }
        try JobQueue.enqueue(jobs.shuffled(), on: connection)

        let workers = try (0..<4).map { _ in
            try InmailqProcess.start(["worker", "--database-url", db.url, "--concurrency", "8", "--lease", "5",
                                      "--kinds", CreditDrill.kind + "," + Renewals.kind, "--log-level", "warning"])
        }
        defer {
            for worker in workers where worker.child.exitStatusIfEnded() == nil {
                worker.child.signal(SIGKILL)
                worker.child.wait()
            }
        }
        for day in 0..<4 {
            #expect(try waitUntilQuiet(connection, workers: workers), "day \(day) never settled")
            try QueueClock.advance(by: .seconds(86_400), on: connection)
            if day == 1 {
                let scheduled = try InmailqProcess.run(["renewals", "schedule", "--database-url", db.url, "--log-level", "warning"])
                #expect(scheduled.status == 0, "\(scheduled.output)")
                #expect(scheduled.output.contains("enqueued 50 renewal job(s)"))
            }
        }
        #expect(try waitUntilQuiet(connection, workers: workers))
        for worker in workers { worker.child.signal(SIGTERM) }
        for worker in workers {
            #expect(worker.wait(timeout: .seconds(30)) == 0, "worker output: \(worker.output.suffix(2000))")
        }

        // S6: no account sent more than its limit in any of its local days.
        #expect(try count(
            """
            select count(*) from (
                select account_id, local_day, count(*) as sent from reservations
                where channel = 'inmail' and state <> 'released' group by 1, 2
            ) per_day where sent > 10
            """, connection) == 0)
        #expect(try count(
            """
            select count(*) from daily_usage u
            where u.inmails <> (select count(*) from reservations r where r.account_id = u.account_id
                                and r.local_day = u.local_day and r.channel = 'inmail' and r.state <> 'released')
            """, connection) == 0)
        // A5, S7: every ledger balances, within 0 and the cap; no reservation left dangling.
        #expect(try count(
            """
            select count(*) from sender_accounts a
            where (select coalesce(sum(amount), 0) from credit_ledger l where l.account_id = a.id)
                  <> (select coalesce(sum(remaining), 0) from credit_grants g where g.account_id = a.id)
               or credit_balance(a.id) not between 0 and 15
            """, connection) == 0)
        #expect(try count("select count(*) from reservations where state = 'held'", connection) == 0)
        // The renewal happened mid-run and its credits were spent by jobs that had waited (S8).
        #expect(try count("select count(distinct account_id) from renewal_cycles", connection) == 50)
        #expect(try count("select count(*) from renewal_cycles where granted > 0 and renewed_at > (select min(reserved_at) from reservations)", connection) == 50)
        #expect(try count(
            """
            select count(*) from reservations r join credit_grants g on g.id = r.grant_id
            where r.state = 'spent' and g.granted_at > (select min(reserved_at) from reservations)
            """, connection) > 0)
        // Work was done on several days, and nothing failed for good.
        // Sends fall on the first three simulated days at least: the first day's limit, the rest
        // of the first credits, then the renewal's. (Four, as this once said, held only while the
        // accounts' time zones straddled a date line: not from 05:00 to 13:00 UTC.)
        #expect(try count("select count(distinct local_day) from reservations", connection) >= 3)
        #expect(try count("select count(*) from job_history where state = 'discarded'", connection) == 0)
        let spent = try count("select count(*) from reservations where state = 'spent' and grant_id is not null", connection)
        let granted = try count("select coalesce(sum(amount), 0) from credit_grants", connection)
        #expect(spent <= granted)
    }
}
