import Foundation
import InMail
import Postgres
import Queue
import Testing

/// One test per rule of ../shared/DOMAIN.md that accounts, credits and limits enforce.
@Suite("Accounts, credits and limits")
struct AccountRuleTests {
    @Test func A1_onlyAPremiumPlanCanSendInMail() throws {
        let f = AccountFixture(connection: try TestDatabase().connect())
        let basic = try f.account(plan: "basic")
        #expect(f.refusal(try f.reserve(basic, credit: false)) == "plan_cannot_send_inmail")
        // A regular message needs no Premium plan.
        #expect(f.refusal(try f.reserve(basic, channel: .message, credit: false)) == nil)
    }

    @Test func A2_plansAreDataWithTheAllotmentsAndCapsOfTheSources() throws {
        let connection = try TestDatabase().connect()
        let rows = try connection.query("select code, monthly_allotment, credit_cap, can_purchase from plans where can_send_inmail order by code").rows
        let plans = try Dictionary(uniqueKeysWithValues: rows.map {
            (try $0.decode(String.self, "code"), [try $0.decode(Int.self, "monthly_allotment"), try $0.decode(Int.self, "credit_cap")])
        })
        #expect(plans == [
            "premium_career": [5, 15], "premium_business": [15, 45], "sales_navigator": [20, 60],
            "sales_navigator_core": [50, 150], "recruiter_lite": [30, 90],
        ])
        // Operators change plans with SQL, and renewals follow.
        try connection.execute("update plans set monthly_allotment = 7 where code = 'premium_career'")
        let f = AccountFixture(connection: connection)
        #expect(try f.renewCurrentCycle(try f.account(plan: "premium_career")) == 7)
    }

    @Test func A3_allotmentArrivesOnTheBillingDayAndDay31FallsOnTheLastDayOfShortMonths() throws {
        let connection = try TestDatabase().connect()
        func cycle(_ anchor: String, _ day: String) throws -> String {
            try connection.query("select billing_cycle_start(\(anchor)::date, 'billing_date', \(day)::date)::text as d").first!.decode(String.self, "d")
        }
        #expect(try cycle("2026-01-31", "2026-02-27") == "2026-01-31")
        #expect(try cycle("2026-01-31", "2026-02-28") == "2026-02-28")
        #expect(try cycle("2026-01-31", "2026-03-30") == "2026-02-28")
        #expect(try cycle("2026-01-31", "2026-03-31") == "2026-03-31")
        #expect(try cycle("2025-11-14", "2026-11-13") == "2026-10-14")
        #expect(try connection.query("select billing_cycle_start('2026-01-31', 'first_of_month_utc', '2026-03-30')::text as d").first!.decode(String.self, "d") == "2026-03-01")
        // The cycle is due exactly on its day, not before.
        let f = AccountFixture(connection: connection)
        let account = try f.account(anchor: "2026-01-31")
        func due(_ day: String) throws -> [String] {
            try connection.query("select cycle_start::text as c from renewal_cycles_due(\(day)::date) where account_id = \(account)")
                .rows.map { try $0.decode(String.self, "c") }
        }
        #expect(try due("2026-02-27") == ["2026-01-31"])
        #expect(try due("2026-02-28") == ["2026-01-31", "2026-02-28"])
    }

    @Test func A4_creditsExpireNinetyDaysAfterTheirGrantAndTheSoonestExpiringIsSpentFirst() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try f.renewCurrentCycle(account)  // 15, expiring 90 days after the cycle start
        try QueueClock.advance(by: .seconds(5 * 86_400), on: connection)
        try connection.execute("select purchase_credits(\(account), 5)")  // expires 5 days later
        let reservation = try f.reserve(account).get()
        let spentFrom = try connection.query(
            "select g.source from reservations r join credit_grants g on g.id = r.grant_id where r.id = \(reservation)"
        ).first!.decode(String.self, "source")
        #expect(spentFrom == "renewal")
        try SendReservation.spend(reservation, on: connection)
        #expect(try f.balance(account) == 19)

        try QueueClock.advance(by: .seconds(86 * 86_400), on: connection)  // day 91 after the renewal grant
        #expect(try f.balance(account) == 5)
        #expect(try connection.query("select expire_credits(\(account)) as n").first!.decode(Int.self, "n") == 14)
        #expect(try f.ledgerSum(account) == 5)
        try QueueClock.advance(by: .seconds(5 * 86_400), on: connection)
        #expect(try f.balance(account) == 0)
    }

    @Test func A4_anExpiryIsBookedAtItsMomentSoTheStatementTheReportAndACancellationAgree() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try f.renewCurrentCycle(account)  // 15, expiring 90 days after the cycle start
        try QueueClock.advance(by: .seconds(60 * 86_400), on: connection)
        try connection.execute("select purchase_credits(\(account), 10)")  // 25 in all; these expire 60 days later
        try QueueClock.advance(by: .seconds(31 * 86_400), on: connection)  // past the renewal's 90th day
        #expect(try f.balance(account) == 10)
        // The elected worker's duty books the expiry, touching nothing else of the account.
        #expect(try connection.queryOne("select expire_due_credits() as n").decode(Int.self, "n") == 15)
        #expect(try connection.queryOne("select expire_due_credits() as n").decode(Int.self, "n") == 0)
        let statement = try connection.query("select balance from credit_statement(\(account))").rows
        #expect(try statement.last?.decode(Int.self, "balance") == 10)  // the statement ends where the balance is
        #expect(try connection.queryOne("select credits_expired from sender_report where account_id = \(account)").decode(Int.self, "credits_expired") == 15)
        #expect(try connection.queryOne("select cancel_subscription(\(account)) as zeroed").decode(Int.self, "zeroed") == 10)
    }

    @Test func A6_aCancellationBooksWhatExpiredAsExpiredNotAsCancelled() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try f.renewCurrentCycle(account)
        try QueueClock.advance(by: .seconds(60 * 86_400), on: connection)
        try connection.execute("select purchase_credits(\(account), 10)")
        try QueueClock.advance(by: .seconds(31 * 86_400), on: connection)  // no duty has run yet
        #expect(try connection.queryOne("select cancel_subscription(\(account)) as zeroed").decode(Int.self, "zeroed") == 10)
        let entries = try connection.query(
            "select entry, -sum(amount)::int as n from credit_ledger where account_id = \(account) and amount < 0 group by entry order by entry"
        ).rows.map { (try $0.decode(String.self, "entry"), try $0.decode(Int.self, "n")) }
        #expect(entries.map(\.0) == ["cancel", "expire"] && entries.map(\.1) == [10, 15])
    }

    @Test func A5_theBalanceNeverExceedsTheCap() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_career")  // 5 a month, cap 15
        try connection.execute("select purchase_credits(\(account), 12)")
        #expect(try f.renewCurrentCycle(account) == 3)  // only up to the cap
        #expect(try f.balance(account) == 15)
        try QueueClock.advance(by: .seconds(32 * 86_400), on: connection)
        #expect(try f.renewCurrentCycle(account) == 0)  // the next cycle: still at the cap
        #expect(try f.balance(account) == 15)
        let overCap = #expect(throws: PostgresError.self) { try connection.execute("select purchase_credits(\(account), 16)") }
        #expect(overCap?.message.contains("cap") == true)
        // Hand-typed SQL cannot slip past the database either: the commit is refused.
        let forged = #expect(throws: PostgresError.self) {
            try connection.transaction { tx in
                try tx.execute(
                    """
                    with g as (insert into credit_grants (account_id, source, amount, remaining, granted_at, expires_at)
                               values (\(account), 'purchase', 20, 20, clock_now(), clock_now() + interval '90 days') returning id)
                    insert into credit_ledger (account_id, entry, amount, grant_id) select \(account), 'purchase', 20, id from g
                    """)
            }
        }
        #expect(forged?.sqlState == "23514")
        #expect(try f.ledgerSum(account) == (try f.balance(account)))
    }

    @Test func A6_cancellingTheSubscriptionZeroesTheBalance() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try f.renewCurrentCycle(account)
        let held = try f.reserve(account).get()
        #expect(try connection.query("select cancel_subscription(\(account)) as z").first!.decode(Int.self, "z") == 15)
        #expect(try f.balance(account) == 0)
        #expect(try f.ledgerSum(account) == 0)
        #expect(try connection.query("select state from reservations where id = \(held)").first!.decode(String.self, "state") == "released")
        #expect(f.refusal(try f.reserve(account)) == "account_cancelled")
        #expect(try f.renewCurrentCycle(account) == 0)
    }

    @Test func A7_anExpiredCardPausesSendingUntilUpdatedAndLosesNothing() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account()
        try f.renewCurrentCycle(account)
        try connection.execute("select set_account_status(\(account), 'payment_failed')")
        let args = try JSONText(encoding: SendRequest(accountID: account, deliveryKey: "a7", channel: .inmail, usesCredit: true))
        let job = try JobQueue.enqueue([NewJob(kind: CreditDrill.kind, args: args, partitionKey: String(account))], on: connection)[0]!
        var guards: [String: any ClaimGuard] = [:]
        guards[CreditDrill.kind] = SendReservationGuard()
        let first = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(first.admitted.isEmpty && first.claimed == 1)
        #expect(try connection.query("select state::text as s from jobs where id = \(job)").first!.decode(String.self, "s") == "scheduled")
        #expect(try f.balance(account) == 5)  // nothing spent, nothing lost

        let later = SendRequest(accountID: account, deliveryKey: "a7-later", channel: .message, usesCredit: false)
        let dueIn3Days = try QueueClock.now(on: connection).addingTimeInterval(3 * 86_400)
        let laterJob = try JobQueue.enqueue([NewJob(kind: CreditDrill.kind, args: try JSONText(encoding: later), runAt: dueIn3Days, partitionKey: String(account))], on: connection)[0]!
        try connection.execute("select set_account_status(\(account), 'active')")  // card updated
        // Only the work the expired card held back wakes up; a job due in three days stays put.
        #expect(try connection.query("select state::text as s from jobs where id = \(laterJob)").first!.decode(String.self, "s") == "scheduled")
        let second = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(second.admitted.map(\.id) == [job])
        #expect(try f.balance(account) == 4)
    }

    @Test func A8_purchasesAreRefusedOnSalesNavigatorAndAllowedOnCareerAndBusiness() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let navigator = try f.account(plan: "sales_navigator")
        let refused = #expect(throws: PostgresError.self) { try connection.execute("select purchase_credits(\(navigator), 5)") }
        #expect(refused?.message.contains("cannot purchase InMail credits (A8)") == true)
        #expect(try f.ledgerSum(navigator) == 0)
        for plan in ["premium_career", "premium_business", "recruiter_lite"] {
            let account = try f.account(plan: plan)
            #expect(try connection.query("select purchase_credits(\(account), 3) as b").first!.decode(Int.self, "b") == 3)
        }
    }

    @Test func S1_aFreeInMailToAnOpenProfileSpendsNoCredit() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account()
        try f.renewCurrentCycle(account)
        let free = try f.reserve(account, credit: false).get()
        try SendReservation.spend(free, on: connection)
        #expect(try f.balance(account) == 5)
        #expect(try connection.query("select count(*) as n from credit_ledger where reservation_id = \(free)").first!.decode(Int.self, "n") == 0)
        #expect(try connection.query("select inmails from daily_usage where account_id = \(account)").first!.decode(Int.self, at: 0) == 1)
    }

    @Test func S6_atMostTheDailyLimitPerLocalDayOfTheAccount() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(timeZone: "Asia/Tokyo", dailyLimit: 3)
        for _ in 0..<3 { _ = try f.reserve(account, credit: false).get() }
        let fourth = try f.reserve(account, credit: false)
        #expect(f.refusal(fourth) == "daily_limit_reached")
        // It may try again at the account's next local midnight (Tokyo), not UTC's.
        guard case .failure(let refused) = fourth, let retryAt = refused.refusal.retryAt else {
            Issue.record("no retry time")
            return
        }
        let local = try connection.query("select (\(retryAt) at time zone 'Asia/Tokyo')::time::text as t").first!.decode(String.self, "t")
        #expect(local == "00:00:00")
        let hand = #expect(throws: PostgresError.self) { try connection.execute("update daily_usage set inmails = inmails + 1") }
        #expect(hand?.constraint == "daily_usage_inmail_limit")
        try QueueClock.advance(by: .seconds(86_400), on: connection)
        #expect(f.refusal(try f.reserve(account, credit: false)) == nil)
    }

    @Test func S6_sendsWaitOutsideWorkingHoursAndForTheirSpacing() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(timeZone: "America/New_York")
        // Open every day but today (in the account's zone): closed now, open at local midnight.
        try connection.execute(
            """
            update sender_accounts a
            set working_days = array(select d from generate_series(1, 7) as d
                                     where d <> extract(isodow from clock_now() at time zone a.time_zone))::smallint[]
            where id = \(account)
            """)
        let closed = try f.reserve(account, credit: false)
        #expect(f.refusal(closed) == "outside_working_hours")
        if case .failure(let refused) = closed, let retryAt = refused.refusal.retryAt {
            let local = try connection.query("select (\(retryAt) at time zone 'America/New_York')::time::text as t").first!.decode(String.self, "t")
            #expect(local == "00:00:00")
        } else {
            Issue.record("no retry time for a closed window")
        }
        let spaced = try f.account()
        try connection.execute("update sender_accounts set min_spacing = '5 minutes', max_spacing = '10 minutes' where id = \(spaced)")
        #expect(f.refusal(try f.reserve(spaced, credit: false)) == nil)
        #expect(f.refusal(try f.reserve(spaced, credit: false)) == "too_soon_after_last_send")
        try QueueClock.advance(by: .seconds(601), on: connection)
        #expect(f.refusal(try f.reserve(spaced, credit: false)) == nil)
    }

    /// S6, S7, S8 and the free-InMail cap for a claimed batch reserved in one statement: each
    /// account's sends are judged in order, as if one after the other, and a send that does not
    /// fit takes nothing from the ones after it.
    @Test func S6_S7_S8_aBatchIsJudgedInOrderAsIfItsSendsCameOneAfterTheOther() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let mixed = try f.account(dailyLimit: 3)
        try connection.execute("select purchase_credits(\(mixed), 2)")  // one above the reserve of one
        try connection.execute("update sender_accounts set monthly_free_inmail_limit = 1 where id = \(mixed)")
        let full = try f.account(dailyLimit: 2)
        try connection.execute("select purchase_credits(\(full), 10)")
        let spaced = try f.account()
        try connection.execute("select purchase_credits(\(spaced), 10)")
        try connection.execute("update sender_accounts set min_spacing = '5 minutes', max_spacing = '10 minutes' where id = \(spaced)")
        func send(_ account: Int64, _ key: String, _ channel: SendRequest.Channel = .inmail, credit: Bool = true) -> SendRequest {
            SendRequest(accountID: account, deliveryKey: key, channel: channel, usesCredit: credit)
        }
        // Accounts interleaved, as a claim may hand them over; each account's order is what counts.
        let batch = [
            send(spaced, "spaced-1", credit: false), send(mixed, "mixed-credit-1"), send(full, "full-1"),
            send(mixed, "mixed-credit-2"), send(full, "full-2"), send(mixed, "mixed-free-1", credit: false),
            send(spaced, "spaced-2"), send(full, "full-3"), send(mixed, "mixed-free-2", credit: false),
            send(full, "full-free", credit: false), send(mixed, "mixed-message", .message, credit: false),
            send(spaced, "spaced-3", .message, credit: false),
        ]
        let refusals = try SendReservation.reserve(batch, on: connection).mapValues(\.reason.rawValue)
        #expect(refusals == [
            "mixed-credit-2": "credits_at_reserve",           // S7: the last credit stays
            "mixed-free-2": "free_inmail_monthly_limit",      // the cap of one free InMail
            "full-3": "daily_limit_reached", "full-free": "daily_limit_reached",  // S6: two a day
            "spaced-2": "too_soon_after_last_send", "spaced-3": "too_soon_after_last_send",
        ])
        let held = try connection.query("select delivery_key from reservations where state = 'held' order by delivery_key").rows
            .map { try $0.decode(String.self, "delivery_key") }
        #expect(held == ["full-1", "full-2", "mixed-credit-1", "mixed-free-1", "mixed-message", "spaced-1"])
        // Usage and credits moved by exactly what was admitted; the ledger still equals the grants.
        let usage = try connection.query("select account_id, inmails, messages from daily_usage").rows.map {
            [try $0.decode(Int64.self, "account_id"), Int64(try $0.decode(Int.self, "inmails")), Int64(try $0.decode(Int.self, "messages"))]
        }
        #expect(Set(usage) == Set([[mixed, 2, 1], [full, 2, 0], [spaced, 1, 0]]))
        #expect(try f.balance(mixed) == 1 && f.balance(full) == 8 && f.balance(spaced) == 10)
        for account in [mixed, full, spaced] { #expect(try f.ledgerSum(account) == f.balance(account)) }
        // The spaced account's next send waits for its spacing, as its refusals say.
        #expect(try connection.query("select count(*) as n from sender_accounts where id = \(spaced) and next_send_at >= clock_now() + interval '5 minutes'")
            .first!.decode(Int.self, "n") == 1)
    }

    @Test func S7_theLastCreditIsKeptInReserve() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account()
        try connection.execute("select purchase_credits(\(account), 2)")
        #expect(f.refusal(try f.reserve(account)) == nil)  // balance 2 -> 1
        #expect(f.refusal(try f.reserve(account)) == "credits_at_reserve")
        #expect(try f.balance(account) == 1)
        try connection.execute("update sender_accounts set credit_reserve = 0 where id = \(account)")
        #expect(f.refusal(try f.reserve(account)) == nil)
        #expect(try f.balance(account) == 0)
        #expect(f.refusal(try f.reserve(account)) == "credits_at_reserve")  // never overdrawn
    }

    @Test func S8_whenCreditsRunOutFreeInMailsGoOnAndCreditInMailsWait() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(dailyLimit: 10)
        try connection.execute("select purchase_credits(\(account), 1)")  // at the reserve already
        var guards: [String: any ClaimGuard] = [:]
        guards[CreditDrill.kind] = SendReservationGuard()
        let jobs = try (0..<4).map { index in
            NewJob(kind: CreditDrill.kind, args: try JSONText(encoding: SendRequest(
                accountID: account, deliveryKey: "s8-\(index)", channel: .inmail, usesCredit: index % 2 == 0)),
                partitionKey: String(account))
        }
        let ids = try JobQueue.enqueue(jobs, on: connection)
        let claimed = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(Set(claimed.admitted.map(\.id)) == Set([ids[1]!, ids[3]!]))  // the free ones
        let waiting = try connection.query("select state::text as s, run_at > clock_now() as later from jobs where id = any(\([ids[0]!, ids[2]!])::bigint[])").rows
        #expect(try waiting.allSatisfy { try $0.decode(String.self, "s") == "scheduled" && $0.decode(Bool.self, "later") })
        #expect(try connection.query("select count(*) as n from all_jobs where state in ('discarded', 'cancelled')").first!.decode(Int.self, "n") == 0)
    }

    @Test func R1_aResponseWithinNinetyDaysGivesTheCreditBackAtOnceUpToTheCap() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_career")
        try f.renewCurrentCycle(account)
        let answered = try f.reserve(account).get()
        try SendReservation.spend(answered, on: connection)
        let ignored = try f.reserve(account).get()
        try SendReservation.spend(ignored, on: connection)
        #expect(try f.balance(account) == 3)
        #expect(try SendReservation.creditBack(answered, on: connection))
        #expect(try f.balance(account) == 4)
        #expect(try SendReservation.creditBack(answered, on: connection) == false)  // once only
        try QueueClock.advance(by: .seconds(91 * 86_400), on: connection)
        #expect(try SendReservation.creditBack(ignored, on: connection) == false)  // too late
        // A free InMail gives nothing back.
        let free = try f.reserve(account, credit: false).get()
        try SendReservation.spend(free, on: connection)
        #expect(try SendReservation.creditBack(free, on: connection) == false)
    }

    @Test func R2_creditBackStopsAtTheCap() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_career")
        try connection.execute("select purchase_credits(\(account), 15)")
        let sent = try f.reserve(account).get()
        try SendReservation.spend(sent, on: connection)
        try connection.execute("select purchase_credits(\(account), 1)")  // back at the cap of 15
        #expect(try SendReservation.creditBack(sent, on: connection) == false)
        #expect(try f.balance(account) == 15)
    }

    @Test func aRetriedDeliveryKeepsItsReservationAndAFailedOneGivesItBack() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(dailyLimit: 5)
        try f.renewCurrentCycle(account)
        let first = try f.reserve(account, key: "contact-7:step-0").get()
        let retry = try f.reserve(account, key: "contact-7:step-0").get()
        #expect(first == retry)
        #expect(try f.balance(account) == 4)
        #expect(try connection.query("select inmails from daily_usage where account_id = \(account)").first!.decode(Int.self, at: 0) == 1)
        try SendReservation.release(first, reason: "recipient unreachable", on: connection)
        #expect(try f.balance(account) == 5)
        #expect(try connection.query("select inmails from daily_usage where account_id = \(account)").first!.decode(Int.self, at: 0) == 0)
        #expect(try f.ledgerSum(account) == 5)
        let ledgerEdit = #expect(throws: PostgresError.self) { try connection.execute("delete from credit_ledger") }
        #expect(ledgerEdit?.message.contains("append-only") == true)
        // Nor can credits vanish by editing a grant, or the running totals, by hand.
        let grantEdit = #expect(throws: PostgresError.self) {
            try connection.execute("update credit_grants set remaining = remaining - 1 where account_id = \(account) and remaining > 0")
        }
        #expect(grantEdit?.message == "credit ledger of account \(account) says 5, its grants hold 4")
        let totalEdit = #expect(throws: PostgresError.self) {
            try connection.execute("update sender_accounts set grants_total = 99 where id = \(account)")
        }
        #expect(totalEdit?.message.contains("kept by the database") == true)
        let totalEditInAFunction = #expect(throws: PostgresError.self) {
            try connection.execute("do $$ begin update sender_accounts set ledger_total = 0; end $$")
        }
        #expect(totalEditInAFunction?.sqlState == "42501")
        try connection.execute("update sender_accounts set display_name = 'Renamed' where id = \(account)")  // other columns: as ever
        #expect(try f.balance(account) == 5)
    }

    /// The ledger = grants check runs once per account at commit, on the state the transaction
    /// ends in: passing through a disagreement is allowed, ending in one is not, from either side.
    @Test func theLedgerAndTheGrantsMustAgreeWhenATransactionCommitsWhateverItPassedThrough() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try f.renewCurrentCycle(account)  // 15 credits
        // Apart after the first statement, together after the second: commits.
        try connection.transaction { tx in
            try tx.execute("update credit_grants set remaining = remaining - 2 where account_id = \(account) and remaining > 0")
            try tx.execute(
                """
                insert into credit_ledger (account_id, entry, amount, grant_id, note)
                select \(account), 'reconcile', -2, id, 'counted by hand' from credit_grants where account_id = \(account)
                """)
        }
        #expect(try f.balance(account) == 13)
        #expect(try f.ledgerSum(account) == 13)
        // Together, then apart: refused, and nothing of it stays.
        let ledgerOnly = #expect(throws: PostgresError.self) {
            try connection.transaction { tx in
                try tx.execute("select purchase_credits(\(account), 1)")
                try tx.execute("insert into credit_ledger (account_id, entry, amount, note) values (\(account), 'reconcile', -3, 'forged')")
            }
        }
        #expect(ledgerOnly?.sqlState == "23514")
        #expect(ledgerOnly?.message == "credit ledger of account \(account) says 11, its grants hold 14")
        #expect(try f.balance(account) == 13)
        #expect(try f.ledgerSum(account) == 13)
    }

    @Test func aRefusedJobMovesItsAccountsWaitingJobsToTheNextMomentInOneStatement() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(dailyLimit: 2)
        let other = try f.account(dailyLimit: 2)
        let jobs = try (0..<6).map { index in
            let owner = index < 5 ? account : other
            return NewJob(kind: CreditDrill.kind, args: try JSONText(encoding: SendRequest(
                accountID: owner, deliveryKey: "move-\(index)", channel: .inmail, usesCredit: false)),
                partitionKey: String(owner))
        }
        try JobQueue.enqueue(jobs, on: connection)
        var guards: [String: any ClaimGuard] = [:]
        guards[CreditDrill.kind] = SendReservationGuard()
        let claimed = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 3, owner: "w", lease: .seconds(30), on: connection)
        #expect(claimed.admitted.count == 2)
        // The third was refused (limit 2): it and the two not yet claimed wait for tomorrow.
        #expect(try connection.query("select count(*) as n from jobs where partition_key = \(String(account)) and state = 'scheduled' and run_at > clock_now()").first!.decode(Int.self, "n") == 3)
        let next = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(next.claimed == 1)  // only the other account's job was left to claim
    }

    @Test func aSessionsCachedPlansAreMadeAgainEveryHundredClaimsForTheTablesAsTheyAreThen() throws {
        let connection = try TestDatabase().connect()
        // A lookup planned (and kept, as reserve_sends' statement is) while its table was small
        // reads the table whole...
        try connection.execute("create table growing (k integer primary key, filler text) with (autovacuum_enabled = false)")
        try connection.execute("insert into growing select k, 'x' from generate_series(1, 3) k")
        try connection.execute("analyze growing")
        try connection.execute("set plan_cache_mode = force_generic_plan")
        try connection.execute("prepare lookup(integer) as select filler from growing where k = $1")
        func plan() throws -> String {
            try connection.query("explain execute lookup(2)").rows.map { try $0.decode(String.self, "QUERY PLAN") }.joined(separator: "\n")
        }
        #expect(try plan().contains("Seq Scan on growing"))
        // ...and goes on doing so as it grows, until the plans are made again.
        try connection.execute("insert into growing select k, repeat('x', 200) from generate_series(4, 50000) k")
        for _ in 0..<2 { try connection.execute("select discard_plans_every('inmailq.test_calls', 3)") }
        #expect(try plan().contains("Seq Scan on growing"))
        try connection.execute("select discard_plans_every('inmailq.test_calls', 3)")
        #expect(try plan().contains("Index Scan using growing_pkey"))

        // reserve_sends counts its calls in the session and drops its plans on every hundredth.
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "sales_navigator_core")
        func calls() throws -> String {
            try connection.query("select current_setting('inmailq.reserve_sends_calls') as n").first!.decode(String.self, "n")
        }
        for _ in 0..<99 { _ = try f.reserve(account, credit: false) }
        #expect(try calls() == "99")
        #expect(f.refusal(try f.reserve(account, credit: false)) == "daily_limit_reached")  // its 100th claim, judged as ever
        #expect(try calls() == "0")
    }

    @Test func aClaimTakesItsCreditsFromAGrantInPlaceWithoutNewIndexEntries() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "sales_navigator_core")
        #expect(try f.renewCurrentCycle(account) == 50)
        try connection.transaction { tx in
            let claims = AccountFixture(connection: tx)
            for _ in 0..<5 { #expect(claims.refusal(try claims.reserve(account, credit: true)) == nil) }
            // Every take of a credit was a HOT update: no index reads remaining (accounts 0007).
            let row = try tx.query(
                "select n_tup_upd, n_tup_hot_upd from pg_stat_xact_user_tables where relname = 'credit_grants'").first!
            #expect(try row.decode(Int.self, "n_tup_upd") == 5)
            #expect(try row.decode(Int.self, "n_tup_hot_upd") == 5)
        }
        #expect(try f.balance(account) == 45)
    }

    @Test func theSendPathsTablesCheckTheirRowsAfterAnUpdateSoNoUpdateLocksItsRowsFirst() throws {
        let connection = try TestDatabase().connect()
        // A row trigger BEFORE UPDATE makes every update of its table lock each row first (a WAL
        // record a row), even an update that sets none of the trigger's columns: a delivery's
        // update of its message and contact, a claim's of its account's credit totals.
        let before = try connection.query(
            """
            select t.tgrelid::regclass::text || ' ' || t.tgname as name
            from pg_trigger t
            where not t.tgisinternal
              and t.tgtype & (1 | 2 | 16) = (1 | 2 | 16)  -- row, before, update
              and t.tgrelid = any(array['jobs', 'sender_accounts', 'credit_grants', 'credit_ledger', 'daily_usage', 'reservations',
                                        'messages', 'contacts', 'message_counts', 'contact_counts']::regclass[])
            order by 1
            """).rows.map { try $0.decode(String.self, "name") }
        #expect(before == [])
        // Their checks still refuse a bad row, after it is written, rolling the statement back.
        let account = try AccountFixture(connection: connection).account(plan: "sales_navigator_core")
        let badZone = #expect(throws: PostgresError.self) {
            try connection.execute("update sender_accounts set time_zone = 'Mars/Olympus' where id = \(account)")
        }
        #expect(badZone?.message.contains("unknown time zone \"Mars/Olympus\"") == true)
        let zone = try connection.query("select time_zone from sender_accounts where id = \(account)").first!.decode(String.self, "time_zone")
        #expect(zone != "Mars/Olympus")
    }

    /// The ledger and the reservations name accounts, grants and reservations that exist, checked
    /// once per statement instead of by foreign keys, and the rows they name are never deleted
    /// nor given another id: whoever writes the SQL, nothing of a refused statement is stored.
    @Test func theCreditHistoryNamesRowsThatExistAndTheyAreNeverDeleted() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let account = try f.account(plan: "premium_business")
        try connection.execute("select purchase_credits(\(account), 10)")
        let reservation = try f.reserve(account).get()
        let grant = try connection.query("select grant_id from reservations where id = \(reservation)").first!.decode(Int64.self, "grant_id")
        func count(_ table: String) throws -> Int {
            try connection.query(SQL(unsafeText: "select count(*) as n from \(table)")).first!.decode(Int.self, "n")
        }
        let entries = try count("credit_ledger"), reservations = try count("reservations")
        func refused(_ sql: String, _ state: String, _ message: String) {
            let error = #expect(throws: PostgresError.self, Comment(rawValue: sql)) { try connection.execute(SQL(unsafeText: sql)) }
            #expect(error?.sqlState == state, Comment(rawValue: sql))
            #expect(error?.message.contains(message) == true, Comment(rawValue: "\(sql): \(error?.message ?? "")"))
        }
        // A statement with one good row and one naming what does not exist stores neither.
        refused("""
            insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
            values (\(account), 'spend', 0, \(grant), \(reservation), 'good'), (\(account), 'spend', 0, \(grant), \(reservation + 1000), 'stray')
            """, "23503", "reservation \(reservation + 1000)")
        refused("insert into credit_ledger (account_id, entry, amount, note) values (\(account + 1000), 'spend', 0, 'x')", "23503",
                "account \(account + 1000)")
        refused("insert into credit_ledger (account_id, entry, amount, grant_id, note) values (\(account), 'spend', 0, \(grant + 1000), 'x')",
                "23503", "grant \(grant + 1000)")
        refused("""
            insert into reservations (account_id, delivery_key, channel, local_day)
            values (\(account), 'good', 'message', '2026-01-05'), (\(account + 1000), 'stray', 'message', '2026-01-05')
            """, "23503", "account \(account + 1000)")
        refused("update reservations set grant_id = \(grant + 1000) where id = \(reservation)", "23503", "grant \(grant + 1000)")
        #expect(try count("credit_ledger") == entries)
        #expect(try count("reservations") == reservations)
        // What they name stays, under its id.
        refused("delete from sender_accounts where id = \(account)", "23001", "sender_accounts rows are never deleted")
        refused("delete from credit_grants where id = \(grant)", "23001", "credit_grants rows are never deleted")
        refused("delete from reservations where id = \(reservation)", "23001", "reservations rows are never deleted")
        refused("update reservations set id = default where id = \(reservation)", "23001", "keep their ids")
        refused("truncate reservations cascade", "23001", "reservations rows are never deleted")
        #expect(try count("reservations") == reservations)
        #expect(try connection.query("select grant_id from reservations where id = \(reservation)").first!.decode(Int64.self, "grant_id") == grant)
    }
}
