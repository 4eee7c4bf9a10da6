import ArgumentParser
import EmbeddedPostgres
import Foundation
import InMail
import Postgres
import Queue

/// `inmailq bench scale`: the costs that must not grow with an agency's size, measured on a
/// small database and again once it holds an agency of a month's work.
struct ScaleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Build an agency of 100,000 accounts and 10 million contacts; measure claims, sends, renewals, reports and listings on it.",
        discussion: """
            On a fresh database (inmailq_bench_<pid>, dropped afterwards) the business clock is set to \
            noon (UTC) of the next first of a month that falls on a weekday (the clock only moves \
            forward), and the claim and a send pipeline are measured first on the empty database. \
            Then it builds, with generate_series, one agency of a simulated month: every client \
            workspace has 1,000 sender accounts (Sales Navigator Core, billing days spread over \
            the month) and one campaign of their contacts; each account sent its first InMail and three \
            follow-ups to some contacts (reservations, credit ledger and daily usage to match, the \
            acceptances and some replies recorded) and has send jobs parked for tomorrow because it is \
            at today's limit. On that database it measures again and prints one line:
              bench=scale cores=2 accounts=... contacts=... messages=... parked_jobs=... build_s=... \
            claim_p50_ms_small=... claim_p50_ms=... pipeline_jobs_per_s_small=... pipeline_jobs_per_s=... \
            renewals=... renewals_schedule_s=... renewals_drain_s=... report_campaign_ms=... report_account_ms=... \
            report_agency_ms=... contacts_first_row_ms=... then the sizes (MB) and dead rows of the hot tables.
            With --reuse, a database kept by an earlier run (--keep) is measured again, with the SQL \
            of this build migrated onto it, without the small database's figures, the build or the \
            renewals (done once): the half-hour build is paid once for several measurements.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(help: "Sender accounts (a multiple of 1,000 beyond 1,000: a workspace and a campaign per 1,000).")
    var accounts: Int = 100_000

    @Option(help: "Contacts, spread evenly over the accounts.")
    var contacts: Int = 10_000_000

    @Option(help: "Messages sent in the month: a first InMail and three follow-ups per contact sent to.")
    var messages: Int = 20_000_000

    @Option(help: "Send jobs parked for tomorrow.")
    var parked: Int = 1_000_000

    @Option(help: "Contacts of the send pipeline measured on the small and on the large database.")
    var pipelineContacts: Int = 10_000

    @Option(help: "Sender accounts of that send pipeline.")
    var pipelineAccounts: Int = 100

    @Option(help: "Worker processes of the send pipeline and of the renewals' drain.")
    var processes: Int = 2

    @Option(help: "Concurrency of each worker process.")
    var concurrency: Int = 32

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    @Option(help: ArgumentHelp("Measure again on this database, kept by an earlier run (--keep); it is kept again.",
                               valueName: "inmailq_bench_<pid>"))
    var reuse: String?

    private var perWorkspace: Int { min(accounts, 1_000) }
    private var contactsPerAccount: Int { contacts / accounts }
    private var sentPerAccount: Int { messages / 4 / accounts }
    private var parkedPerAccount: Int { parked / accounts }

    func validate() throws {
        guard accounts > 0, accounts <= 1_000 || accounts % 1_000 == 0 else {
            throw ValidationError("--accounts must be 1 to 1,000 or a multiple of 1,000 (got \(accounts))")
        }
        guard contacts >= accounts, messages >= 0, parked >= 0 else {
            throw ValidationError("--contacts must be at least --accounts; --messages and --parked not negative")
        }
        guard sentPerAccount + parkedPerAccount <= contactsPerAccount else {
            throw ValidationError(
                "each account has \(contactsPerAccount) contacts: too few for \(sentPerAccount) sent to (--messages / 4) "
                    + "and \(parkedPerAccount) parked (--parked)")
        }
        guard sentPerAccount <= 200, parkedPerAccount <= 10 else {
            throw ValidationError("at most 200 contacts sent to and 10 parked jobs per account fit a month's daily limits")
        }
        guard pipelineContacts > 0, pipelineAccounts > 0, processes > 0, concurrency > 0 else {
            throw ValidationError("--pipeline-contacts, --pipeline-accounts, --processes and --concurrency must be positive")
        }
    }

    func run() throws {
        if let reuse { return try measureAgain(reuse) }
        let bench = try BenchDatabase(options: options)
        defer { if !keep { bench.drop() } }
        let connection = try Connection(bench.configuration)
        let today = try setBusinessDay(on: connection)
        var results: [(String, String)] = [
            ("bench", "scale"), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"), ("accounts", "\(accounts)"),
            ("contacts", "\(contacts)"), ("messages", "\(sentPerAccount * 4 * accounts)"), ("parked_jobs", "\(parkedPerAccount * accounts)"),
        ]

        progress("measuring on the small database")
        let smallClaims = try measureClaims(on: connection)
        let smallPipeline = try sendPipeline(agency: "Small agency", bench: bench, on: connection)

        let buildStart = ContinuousClock.now
        let agency = try build(endingOn: today, on: connection)
        results.append(("build_s", format((ContinuousClock.now - buildStart).seconds, digits: 1)))

        progress("measuring on the large database")
        let claims = try measureClaims(on: connection)
        let pipeline = try sendPipeline(agency: "Pipeline agency", bench: bench, on: connection)
        results += [
            ("claim_p50_ms_small", format(smallClaims.p50, digits: 3)), ("claim_p99_ms_small", format(smallClaims.p99, digits: 3)),
            ("claim_p50_ms", format(claims.p50, digits: 3)), ("claim_p99_ms", format(claims.p99, digits: 3)),
            ("pipeline_jobs_per_s_small", format(smallPipeline)), ("pipeline_jobs_per_s", format(pipeline)),
        ]
        results += try renewals(bench: bench, on: connection)
        results += try readingFigures(agency: agency, bench: bench, on: connection)
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// `--reuse`: the large database's figures again, on a database an earlier run kept.
    private func measureAgain(_ name: String) throws {
        let bench = try BenchDatabase(existing: name, options: options)
        let connection = try Connection(bench.configuration)
        let found = try connection.query("select id from agencies where name = 'Scale agency'").rows
        guard found.count == 1 else { throw CommandFailure("\(name) holds no agency built by bench scale (named 'Scale agency')") }
        let agency = try found[0].decode(Int64.self, "id")
        progress("measuring again on \(name)")
        let claims = try measureClaims(on: connection)
        let pipeline = try sendPipeline(agency: "Pipeline agency (run \(getpid()))", bench: bench, on: connection)
        let results: [(String, String)] = [
            ("bench", "scale"), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"), ("database", name),
            ("claim_p50_ms", format(claims.p50, digits: 3)), ("claim_p99_ms", format(claims.p99, digits: 3)),
            ("pipeline_jobs_per_s", format(pipeline)),
        ] + (try readingFigures(agency: agency, bench: bench, on: connection))
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// The figures that end both lines: the reports, the first listed contact, the sizes.
    private func readingFigures(agency: Int64, bench: BenchDatabase, on connection: Connection) throws -> [(String, String)] {
        try reports(agency: agency, on: connection)
            + [("contacts_first_row_ms", format(try firstListedContact(bench: bench, on: connection), digits: 1))]
            + (try sizes(on: connection))
    }

    // MARK: The agency

    /// Sets the business clock to noon (UTC) of the first day of a month in the future (a
    /// weekday, inside the default working hours, so that sends go at once; a billing day on which
    /// a thirtieth of the accounts renews); returns that day as `YYYY-MM-DD`. The clock only
    /// moves forward, so no fixed date can serve every run.
    private func setBusinessDay(on connection: Connection) throws -> String {
        let day = try connection.queryOne(
            """
            select to_char(d, 'YYYY-MM-DD') as day
            from generate_series(date_trunc('month', now() at time zone 'UTC') + interval '1 month',
                                 date_trunc('month', now() at time zone 'UTC') + interval '12 months', interval '1 month') as d
            where extract(isodow from d) <= 5
            order by d
            limit 1
            """).decode(String.self, "day")
        try connection.execute("select clock_advance((\(day)::date + time '12:00') at time zone 'UTC' - clock_now())")
        return day
    }

    /// Builds the agency of the month ending on `today`, a workspace (1,000 accounts) at a time;
    /// returns the agency's id.
    private func build(endingOn today: String, on connection: Connection) throws -> Int64 {
        let agency = try connection.queryOne("select admin_create_agency('Scale agency') as id").decode(Int64.self, "id")
        let workspaces = accounts / perWorkspace
        // The data is consistent by construction, so the row triggers that check what a worker or
        // an operator writes are off while it loads (a million calls each); the ledger's balance
        // is checked once at the end instead of per entry.
        let rowChecks = [
            ("messages", "messages_of_their_contact_inserted"), ("messages", "messages_within_limits_inserted"),
            ("contacts", "contacts_sender_in_the_pool"), ("credit_ledger", "credit_ledger_cap_holds"),
            ("credit_grants", "credit_grants_inserted_cap_holds"), ("sender_accounts", "sender_accounts_credit_totals_agree"),
            ("credit_ledger", "credit_ledger_names_existing_rows"), ("reservations", "reservations_name_existing_rows_inserted"),
        ]
        for (table, trigger) in rowChecks { try connection.runScript("alter table \(table) disable trigger \(trigger)") }
        // Likewise the foreign keys of the big tables: checked row by row they cost more than the
        // rows themselves; added back afterwards, each is validated by one join.
        let foreignKeys = try connection.query(
            """
            select conrelid::regclass::text as tab, conname as name, pg_get_constraintdef(oid) as definition
            from pg_constraint
            where contype = 'f' and conrelid::regclass::text in ('contacts', 'messages', 'reservations', 'credit_ledger', 'responses')
            """).rows.map { (try $0.decode(String.self, "tab"), try $0.decode(String.self, "name"), try $0.decode(String.self, "definition")) }
        for (table, name, _) in foreignKeys { try connection.runScript("alter table \(table) drop constraint \(name)") }
        var last = ContinuousClock.now
        for index in 0..<workspaces {
            try connection.transaction { connection in
                try buildWorkspace(index, agency: agency, today: today, on: connection)
            }
            if ContinuousClock.now - last > .seconds(10) || index == workspaces - 1 {
                progress("built \(index + 1) of \(workspaces) workspaces (\((index + 1) * perWorkspace) accounts)")
                last = ContinuousClock.now
            }
        }
        progress("validating \(foreignKeys.count) foreign keys")
        for (table, name, definition) in foreignKeys {
            try connection.runScript("alter table \(table) add constraint \(name) \(definition)")
        }
        for (table, trigger) in rowChecks { try connection.runScript("alter table \(table) enable trigger \(trigger)") }
        // What the credit history and the messages name, checked per statement rather than by
        // foreign keys: one join each.
        let unnamed = try connection.queryOne(
            """
            select (select count(*) from credit_ledger e left join sender_accounts a on a.id = e.account_id where a.id is null)
                 + (select count(*) from credit_ledger e left join reservations r on r.id = e.reservation_id
                    where e.reservation_id is not null and r.id is null)
                 + (select count(*) from credit_ledger e left join credit_grants g on g.id = e.grant_id where e.grant_id is not null and g.id is null)
                 + (select count(*) from reservations r left join sender_accounts a on a.id = r.account_id where a.id is null)
                 + (select count(*) from reservations r left join credit_grants g on g.id = r.grant_id where r.grant_id is not null and g.id is null)
                 + (select count(*) from messages m left join contacts c on c.id = m.contact_id
                    where c.id is null or c.member_key <> m.member_key or c.campaign_id <> m.campaign_id
                       or c.sender_account_id is distinct from m.account_id)
                 + (select count(*) from messages m left join reservations r on r.id = m.reservation_id where r.id is null)
                 -- a contact's sender: an account of its campaign's pool (the pool's rows name existing accounts)
                 + (select count(*) from contacts c left join campaign_senders s on s.campaign_id = c.campaign_id
                                                                               and s.account_id = c.sender_account_id
                    where c.sender_account_id is not null and s.account_id is null)
                   as n
            """)
            .decode(Int.self, "n")
        guard unnamed == 0 else {
            throw CommandFailure("the build left \(unnamed) ledger entries, reservations, messages or contacts naming rows that do not exist")
        }
        let unbalanced = try connection.queryOne(
            """
            select count(*) as n from sender_accounts a join workspaces w on w.id = a.workspace_id
            where w.agency_id = \(agency) and (a.ledger_total <> a.grants_total or a.grants_total not between 0 and 150)
            """)
            .decode(Int.self, "n")
        guard unbalanced == 0 else { throw CommandFailure("the build left \(unbalanced) accounts whose ledger and grants disagree") }
        // The counter rows the build wrote are folded now, as the elected worker folds each
        // minute's in a running system. Left to the first worker, that catch-up (a month of every
        // account's counters) fell on the large database's send pipeline: 1,561-1,736 jobs/s
        // against 2,700 on the same database folded.
        progress("folding the report counters")
        try connection.execute("select compact_report_counters()")
        progress("analyzing")
        try connection.runScript("vacuum analyze")
        // The build leaves gigabytes of dirty pages and WAL: flushed now, not by a checkpoint that
        // would share the machine with the measurements (and have their first writes to each page
        // logged whole). CHECKPOINT needs a superuser or pg_checkpoint; without, the run goes on.
        do {
            try connection.runScript("checkpoint")
        } catch {
            progress("not flushing the build first (\(error)): the measurements may share the machine with a checkpoint")
        }
        return agency
    }

    /// One client workspace: its accounts, its campaign and contacts, a month of sent messages
    /// with everything they hold in the ledger, and tomorrow's parked sends.
    private func buildWorkspace(_ index: Int, agency: Int64, today: String, on connection: Connection) throws {
        let workspace = try connection.queryOne("select admin_create_workspace(\(agency), \("Client \(index + 1)")) as id")
            .decode(Int64.self, "id")
        let first = index * perWorkspace
        // Accounts: billing days 1-30 in turn, so a thirtieth of them renews on any billing day.
        try connection.execute(
            """
            insert into sender_accounts (workspace_id, display_name, plan_code, billing_anchor)
            select \(workspace), 'Sender ' || n, 'sales_navigator_core', date '2026-01-01' + n % 30
            from generate_series(\(first)::integer, \(first + perWorkspace - 1)::integer) as n
            """)
        let campaign = try connection.queryOne(
            """
            insert into campaigns (workspace_id, name, status, activated_at)
            values (\(workspace), 'Outreach', 'draft', null) returning id
            """).decode(Int64.self, "id")
        try connection.runScript(
            """
            set local enable_nestloop = off;  -- joins of CTEs the planner counts as a few rows

            insert into campaign_steps (campaign_id, position, subject, body, delay_days)
            values (\(campaign), 0, 'A question, {{first_name|there}}', 'Hi {{first_name|there}}, open to a call about {{company|your team}}?', null),
                   (\(campaign), 1, null, 'Following up on my InMail.', 3),
                   (\(campaign), 2, null, 'One more thought.', 3),
                   (\(campaign), 3, null, 'Last note from me.', 3);
            insert into campaign_senders (campaign_id, account_id)
            select \(campaign), id from sender_accounts where workspace_id = \(workspace);
            update campaigns set status = 'active', activated_at = clock_now() - interval '40 days' where id = \(campaign);

            -- Every cycle up to yesterday renewed; this cycle's grant of 50 is what the month spent from.
            insert into renewal_cycles (account_id, cycle_start, granted, expired, renewed_at)
            select distinct a.id, billing_cycle_start(a.billing_anchor, 'billing_date', d::date), 50, 0, clock_now() - interval '1 day'
            from sender_accounts a, generate_series(date '\(today)' - 92, date '\(today)' - 1, interval '1 day') as d
            where a.workspace_id = \(workspace);
            insert into credit_grants (account_id, source, amount, remaining, granted_at, expires_at)
            select a.id, 'renewal', 50, 50, c.start, c.start + interval '90 days'
            from sender_accounts a
            cross join lateral (select max(cycle_start)::timestamptz as start from renewal_cycles r where r.account_id = a.id) c
            where a.workspace_id = \(workspace);
            insert into credit_ledger (account_id, entry, amount, grant_id, note, at)
            select account_id, 'grant', amount, id, 'renewal', granted_at
            from credit_grants where account_id in (select id from sender_accounts where workspace_id = \(workspace));

            -- Contacts: the first sent to (finished; every tenth replied), the next parked, the rest waiting.
            insert into contacts (campaign_id, workspace_id, member_key, profile_url, first_name, company, open_profile,
                                  status, sender_account_id, added_at, last_event_at)
            select \(campaign), \(workspace), 'in:scale-' || g, 'https://www.linkedin.com/in/scale-' || g, 'Member ' || g,
                   'Company ' || g % 1000, j % 5 = 0,
                   case when j >= \(sentPerAccount) then 'waiting' when j % 10 = 1 then 'replied' else 'finished' end::contact_status,
                   case when j < \(sentPerAccount + parkedPerAccount) then a.id end,
                   clock_now() - interval '35 days', clock_now() - interval '1 day'
            from sender_accounts a
            cross join generate_series(0, \(contactsPerAccount - 1)) as j
            cross join lateral (select (a.id - 1) * \(contactsPerAccount) + j as g) k
            where a.workspace_id = \(workspace);

            -- A month of sends: each contact sent to got its InMail on one of 20 working days
            -- (a credit unless its profile is open, S1) and its follow-ups 3, 6 and 9 days later.
            create temporary table month_sends on commit drop as
            select c.id as contact_id, c.sender_account_id as account_id, c.member_key, s.step,
                   case when s.step = 0 then 'inmail' else 'message' end::send_channel as channel,
                   s.step = 0 and not c.open_profile as uses_credit,
                   (date '\(today)' - 29 + c.day + 3 * s.step) + time '10:00' as sent_at,
                   c.status = 'replied' and s.step = 3 as replied
            from (select *, (row_number() over (partition by sender_account_id order by id) % 20)::integer as day
                  from contacts where campaign_id = \(campaign) and status in ('finished', 'replied')) c
            cross join generate_series(0, 3) as s(step);
            -- (Joins below read this workspace's reservations from here, never the whole table.)
            create temporary table month_reservations on commit drop as
            with made as (
                insert into reservations (account_id, delivery_key, channel, grant_id, local_day, state, reserved_at, settled_at)
                select m.account_id, delivery_key(m.contact_id, m.step), m.channel,
                       case when m.uses_credit then g.id end, m.sent_at::date, 'spent', m.sent_at, m.sent_at
                from month_sends m join credit_grants g on g.account_id = m.account_id
                where g.account_id in (select id from sender_accounts where workspace_id = \(workspace))
                returning id, account_id, delivery_key, grant_id, reserved_at
            )
            select * from made;
            update credit_grants g set remaining = remaining - spent.n
            from (select account_id, count(*)::integer as n from month_sends where uses_credit group by account_id) spent
            where g.account_id = spent.account_id;
            insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note, at)
            select r.account_id, e.entry, e.amount, r.grant_id, r.id, r.delivery_key, r.reserved_at
            from month_reservations r
            cross join (values ('reserve', -1), ('spend', 0)) as e(entry, amount)
            where r.grant_id is not null;
            insert into daily_usage (account_id, local_day, inmails, messages, inmail_limit, message_limit)
            select account_id, sent_at::date, count(*) filter (where channel = 'inmail'), count(*) filter (where channel = 'message'), 10, 25
            from month_sends group by 1, 2;
            insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key,
                                  subject, body, reservation_id, state, receipt, created_at, sent_at, responded_at)
            select m.contact_id, \(campaign), m.account_id, m.member_key, m.step, m.channel, m.uses_credit, r.delivery_key,
                   case when m.step = 0 then 'A question, there' end, 'Hi there, open to a call about your team?',
                   r.id, 'sent', 'scale-' || r.id, m.sent_at, m.sent_at,
                   case when m.step = 0 then m.sent_at + interval '1 day' when m.replied then m.sent_at + interval '2 hours' end
            from month_sends m join month_reservations r on r.delivery_key = delivery_key(m.contact_id, m.step);
            -- Every contact sent to accepted the InMail (so its follow-ups went), every tenth replied.
            insert into responses (message_id, kind, received_at)
            select id, case when step = 0 then 'interested' else 'reply' end, responded_at
            from messages where campaign_id = \(campaign) and responded_at is not null;

            -- Today every account is at its InMail limit; its next sends are parked for tomorrow.
            create temporary table parked on commit drop as
            select id, sender_account_id, open_profile from contacts
            where campaign_id = \(campaign) and status = 'waiting' and sender_account_id is not null;
            insert into daily_usage (account_id, local_day, inmails, messages, inmail_limit, message_limit)
            select id, date '\(today)', 10, 0, 10, 25 from sender_accounts where workspace_id = \(workspace);
            select count(*) from queue_enqueue(
                (select array_agg('inmail.send'::text order by id) from parked),
                (select array_agg(send_job_args(id, 0, sender_account_id, 'inmail', not open_profile) order by id) from parked),
                (select array_agg((date '\(today)' + 1 + time '09:00')::timestamptz order by id) from parked), '{}',
                (select array_agg(25 order by id) from parked), (select array_agg(delivery_key(id, 0) order by id) from parked),
                (select array_agg(sender_account_id::text order by id) from parked));
            """)
    }

    // MARK: Measurements

    /// A fresh campaign of `pipelineContacts` sent by worker processes; jobs/s.
    private func sendPipeline(agency: String, bench: BenchDatabase, on connection: Connection) throws -> Double {
        progress("send pipeline: \(pipelineContacts) contacts from \(pipelineAccounts) accounts")
        let campaign = try BenchCampaign.create(
            contacts: pipelineContacts, accounts: pipelineAccounts, agency: agency, bench: bench, on: connection)
        let start = ContinuousClock.now
        // Not --exit-when-done: the parked jobs of the large database stay unfinished.
        let workers = try (0..<processes).map { _ in
            try bench.startWorker(concurrency: concurrency, kinds: Outreach.sendKind, extra: [])
        }
        defer { workers.forEach { $0.signal(SIGTERM); _ = $0.wait() } }
        let deadline = ContinuousClock.now + .seconds(600)
        while try sent(campaign: campaign, on: connection) < pipelineContacts {
            guard ContinuousClock.now < deadline, workers.allSatisfy({ $0.exitStatusIfEnded() == nil }) else {
                throw CommandFailure("the send pipeline did not finish; worker log: \(bench.workerLog)")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return Double(pipelineContacts) / (ContinuousClock.now - start).seconds
    }

    private func sent(campaign: Int64, on connection: Connection) throws -> Int {
        try connection.queryOne("select count(*) as n from messages where campaign_id = \(campaign) and state = 'sent'")
            .decode(Int.self, "n")
    }

    /// `renewals schedule` for today, a billing day of a thirtieth of the accounts, and the drain
    /// of its jobs by worker processes.
    private func renewals(bench: BenchDatabase, on connection: Connection) throws -> [(String, String)] {
        progress("scheduling and draining today's renewals")
        let renewedToday = "select count(*) as n from renewal_cycles where cycle_start = (clock_now() at time zone 'UTC')::date"
        let before = try connection.queryOne(SQL(unsafeText: renewedToday)).decode(Int.self, "n")
        let start = ContinuousClock.now
        let scheduled = try Renewals.schedule(connection: connection)
        let scheduleSeconds = (ContinuousClock.now - start).seconds
        let drainStart = ContinuousClock.now
        let workers = try (0..<processes).map { _ in
            try bench.startWorker(concurrency: concurrency, kinds: Renewals.kind, extra: ["--exit-when-done"])
        }
        for worker in workers {
            guard worker.wait() == 0 else { throw CommandFailure("a renewal worker failed; its log: \(bench.workerLog)") }
        }
        let drainSeconds = (ContinuousClock.now - drainStart).seconds
        let renewed = try connection.queryOne(SQL(unsafeText: renewedToday)).decode(Int.self, "n") - before
        guard renewed == scheduled else { throw CommandFailure("\(scheduled) renewals were scheduled but \(renewed) renewed") }
        return [("renewals", "\(scheduled)"), ("renewals_schedule_s", format(scheduleSeconds, digits: 2)),
                ("renewals_drain_s", format(drainSeconds, digits: 2))]
    }

    /// The median of 5 runs of `report` for one campaign, one account and the agency
    /// (of fewer when one takes over a second).
    private func reports(agency: Int64, on connection: Connection) throws -> [(String, String)] {
        progress("timing reports")
        let picked = try connection.queryOne(
            """
            select (select min(c.id) from campaigns c join workspaces w on w.id = c.workspace_id where w.agency_id = \(agency)) as campaign,
                   (select min(a.id) from sender_accounts a join workspaces w on w.id = a.workspace_id where w.agency_id = \(agency)) as account
            """)
        let campaign = try picked.decode(Int64.self, "campaign")
        let account = try picked.decode(Int64.self, "account")
        func median(_ body: () throws -> String) throws -> Double {
            var times: [Double] = []
            while times.count < 5 && (times.last ?? 0) < 1000 {
                let start = ContinuousClock.now
                _ = try body()
                times.append((ContinuousClock.now - start).seconds * 1000)
            }
            return times.sorted()[times.count / 2]
        }
        return [
            ("report_campaign_ms", format(try median { try Reports.campaigns(campaign, on: connection) }, digits: 1)),
            ("report_account_ms", format(try median { try Reports.senders(account, on: connection) }, digits: 1)),
            ("report_agency_ms", format(try median { try Reports.agency(agency, on: connection) ?? "" }, digits: 1)),
        ]
    }

    /// Milliseconds from starting `inmailq contacts list` on the largest campaign to its first
    /// contact's line (the process's start included).
    private func firstListedContact(bench: BenchDatabase, on connection: Connection) throws -> Double {
        let campaign = try connection.queryOne(
            "select campaign_id from contacts group by campaign_id order by count(*) desc limit 1").decode(Int64.self, "campaign_id")
        progress("timing the first line of contacts list --campaign \(campaign)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BenchDatabase.executable)
        process.arguments = ["contacts", "list", "--campaign", "\(campaign)", "--database-url", bench.configuration.conninfo]
        let pipe = Pipe()
        process.standardOutput = pipe
        let start = ContinuousClock.now
        try process.run()
        var lines = 0
        while lines < 2 {  // the header, then the first contact
            let data = pipe.fileHandleForReading.availableData
            guard !data.isEmpty else { throw CommandFailure("contacts list printed no contact") }
            lines += data.filter { $0 == UInt8(ascii: "\n") }.count
        }
        let milliseconds = (ContinuousClock.now - start).seconds * 1000
        kill(process.processIdentifier, SIGKILL)  // the rest of the listing is not wanted
        process.waitUntilExit()
        return milliseconds
    }

    /// Sizes (MB, indexes included) and dead rows of the hot tables after the month.
    private func sizes(on connection: Connection) throws -> [(String, String)] {
        try connection.query(
            """
            select relname as name, round(pg_total_relation_size(relid) / 1048576.0)::bigint as mb, n_dead_tup as dead
            from pg_stat_user_tables
            where relname in ('contacts', 'messages', 'reservations', 'credit_ledger', 'daily_usage', 'jobs', 'job_history', 'responses')
            order by relname
            """).rows.flatMap { row -> [(String, String)] in
                let name = try row.decode(String.self, "name")
                return [("\(name)_mb", "\(try row.decode(Int64.self, "mb"))"), ("\(name)_dead", "\(try row.decode(Int64.self, "dead"))")]
            }
    }
}
