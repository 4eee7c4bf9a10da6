import Foundation
import InMail
import Postgres
import Queue
import Testing

@Suite("Renewals")
struct RenewalTests {
    @Test func scheduleEnqueuesDueCyclesIncludingMissedDaysAndNothingTwice() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let today = try connection.query("select (clock_now() at time zone 'UTC')::date as d").first!.decode(String.self, "d")
        let twoDaysAgo = try connection.query("select ((clock_now() at time zone 'UTC')::date - 2)::text as d").first!.decode(String.self, "d")
        let missed = try f.account(anchor: twoDaysAgo)  // its cycle began while cron was down
        let fresh = try f.account(anchor: today)
        #expect(try Renewals.schedule(connection: connection) == 2)
        #expect(try Renewals.schedule(connection: connection) == 0)

        // Running each job twice grants each cycle once.
        for _ in 0..<2 {
            for row in try connection.query("select args->>'account_id' as a, args->>'cycle_start' as c from jobs where kind = 'credits.renew'").rows {
                try Renewals.renew(account: Int64(try row.decode(String.self, "a"))!, cycleStart: try row.decode(String.self, "c"), on: connection)
            }
        }
        #expect(try f.balance(missed) == 5)
        #expect(try f.balance(fresh) == 5)
        let claimed = try JobQueue.claim(kinds: [Renewals.kind], limit: 10, owner: "w", lease: .seconds(30), on: connection)
        try JobQueue.finish(claimed.map { ($0.lease, JobOutcome.completed) }, on: connection)
        #expect(try Renewals.schedule(connection: connection) == 0)  // done cycles are not due again
    }

    @Test func renewalsScheduleCommandTakesADateAndRefusesABadOne() throws {
        let db = try TestDatabase()
        let f = AccountFixture(connection: try db.connect())
        let account = try f.account(anchor: "2026-01-31")
        _ = account
        let run = try InmailqProcess.run(["renewals", "schedule", "--date", "2026-02-28", "--database-url", db.url, "--log-level", "warning"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("enqueued 2 renewal job(s)"))
        let bad = try InmailqProcess.run(["renewals", "schedule", "--date", "28/02/2026", "--database-url", db.url])
        #expect(bad.status != 0)
        #expect(bad.output.contains("--date 28/02/2026 is not a date: use YYYY-MM-DD"))
    }

    @Test func A3_aFutureDateOrACycleThatHasNotBegunGrantsNothingEarly() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(anchor: "2026-01-31")
        let future = try InmailqProcess.run(["renewals", "schedule", "--date", "2099-01-01", "--database-url", db.url])
        #expect(future.status != 0)
        #expect(future.output.contains("renewals can be scheduled up to today"))
        #expect(try count("select count(*) from jobs", connection) == 0)
        let early = #expect(throws: PostgresError.self) {
            try Renewals.renew(account: account, cycleStart: "2098-12-31", on: connection)
        }
        #expect(early?.message.contains("has not begun") == true)
        #expect(try f.balance(account) == 0 && f.ledgerSum(account) == 0)
    }
}
