import Foundation
import Mustache
import Postgres

/// The People view's filter and page, from the query string: `status`, `q` (a part of a name,
/// company or member key) and `after` (the last contact id of the page before).
struct PeopleFilter: Sendable {
    static let statuses = ["waiting", "sent", "accepted", "declined", "replied", "finished", "skipped", "failed"]
    static let pageSize = 50

    var status: String?
    var search: String?
    var after: Int64 = 0

    init<Parameters: Sequence>(query: Parameters) where Parameters.Element == (key: Substring, value: Substring) {
        for (key, value) in query {
            switch key {
            case "status" where Self.statuses.contains(String(value)): status = String(value)
            case "q" where !value.trimmingCharacters(in: .whitespaces).isEmpty:
                search = String(value.trimmingCharacters(in: .whitespaces).prefix(100))
            case "after": after = max(0, Int64(value) ?? 0)
            default: break
            }
        }
    }
}

/// The console's pages: each one's queries (run by the caller under the agency's role) and
/// its template.
struct ConsolePages: Sendable {
    let templates: MustacheLibrary

    init() throws {
        var library = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all {
            try library.register(text, named: name)
        }
        templates = library
    }

    func render(_ name: String, _ context: [String: Any]) -> String {
        templates.render(context, withTemplate: name) ?? "template \(name) is missing"
    }

    /// What every signed-in page shows at its top.
    private func frame(_ session: ConsoleLogins.Session, title: String, on connection: Connection) throws -> [String: Any] {
        let top = try records("""
            select (select name from agencies) as agency,
                   to_char(clock_now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' as now
            """, on: connection).first ?? [:]
        return ["title": title, "agency": top["agency"] ?? "?", "login": session.login, "csrf": session.csrfToken, "now": top["now"] ?? ""]
    }

    // The overview ----------------------------------------------------------------------------

    /// Sender accounts on one page of the overview.
    static let accountsPageSize = 50

    /// The overview, its accounts after account id `accountsAfter` (a page of them).
    func overview(_ session: ConsoleLogins.Session, accountsAfter: Int64, refresh: Int, on connection: Connection) throws -> RenderedPage {
        var context = try frame(session, title: "Overview", on: connection)
        context["totals"] = try records("""
            select contacts, inmails_sent, free_inmails, credit_inmails, connection_messages, accepted, declined,
                   responders, coalesce(response_rate_pct, 0) as response_rate_pct, credits_spent, credits_back, waiting, failed
            from agency_report
            """, on: connection)
        // The queue: the agency's jobs, unfinished or finished in the last hour, and how long the
        // oldest available one has waited.
        let queue = try records("""
            select kind, state::text as state, jobs,
                   coalesce(to_char(justify_interval(date_trunc('second',
                       clock_now() - min(earliest_run_at) filter (where state = 'available') over ())), 'HH24:MI:SS'),
                       'none waiting') as oldest_available
            from reader_job_counts(now() - interval '1 hour')
            order by kind, state
            """, on: connection)
        context["queue"] = queue
        context["oldest"] = queue.first?["oldest_available"] ?? "none waiting"
        // One read of the agency's jobs of the last day: the last hour's chart (completed jobs and
        // failed attempts per 5 minutes), and the day's latest errors (as JSON, the same on each row).
        let hour = try records("""
            with recent as materialized (
                select id, kind, finished_at, state, errors from reader_recent_jobs(now() - interval '1 day')
            ),
            failures as (
                select j.id, j.kind, e->>'attempt' as attempt, (e->>'at')::timestamptz as at, e->>'error' as error
                from recent j, jsonb_array_elements(j.errors) e
            ),
            minutes as (
                select g as bucket from generate_series(0, 11) g
            ),
            finished as (
                select 11 - floor(extract(epoch from now() - finished_at) / 300)::int as bucket, state
                from recent where finished_at >= now() - interval '1 hour'
            ),
            failed as (
                select 11 - floor(extract(epoch from now() - at) / 300)::int as bucket
                from failures where at >= now() - interval '1 hour'
            )
            select m.bucket, to_char(now() - (11 - m.bucket) * interval '5 minutes', 'HH24:MI') as label,
                   (select count(*) from finished f where f.bucket = m.bucket and f.state = 'completed') as completed,
                   (select count(*) from failed f where f.bucket = m.bucket) as failed,
                   (select coalesce(jsonb_agg(jsonb_build_object(
                               'id', f.id::text, 'kind', f.kind, 'attempt', coalesce(f.attempt, ''),
                               'at', coalesce(to_char(f.at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ''),
                               'error', coalesce(left(f.error, 300), ''))
                           order by f.at desc), '[]')
                    from (select * from failures order by at desc limit 10) f)::text as latest_errors
            from minutes m order by m.bucket
            """, on: connection)
        context["throughput_chart"] = SVGChart.bars(
            labels: hour.map { $0["label"] ?? "" },
            series: [("completed", hour.map { Double($0["completed"] ?? "") ?? 0 }, "#2f7d4f"),
                     ("failed attempts", hour.map { Double($0["failed"] ?? "") ?? 0 }, "#c0392b")],
            title: "Jobs per 5 minutes, last hour")
        context["errors"] = (hour.first?["latest_errors"]).flatMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: String]]
        } ?? []
        context["campaigns"] = try records("""
            select campaign_id, workspace, campaign, status::text as status, contacts, inmails_sent, responders,
                   coalesce(response_rate_pct, 0) as response_rate_pct, credits_spent, waiting
            from campaign_report order by campaign_id
            """, on: connection)
        let accounts = try records("""
            select r.account_id, r.display_name, r.plan, r.status::text as status, r.credit_balance, r.credit_cap,
                   coalesce(u.inmails, 0) as inmails_today, a.daily_inmail_limit, r.inmails_sent, r.contacts_waiting
            from sender_report r
            join sender_accounts a on a.id = r.account_id
            left join daily_usage u on u.account_id = a.id and u.local_day = (clock_now() at time zone a.time_zone)::date
            where r.account_id > \(accountsAfter)
            order by r.account_id limit \(Self.accountsPageSize)
            """, on: connection)
        context["accounts"] = accounts
        context["pager"] = pager("accounts", rows: accounts, idColumn: "account_id", pageSize: Self.accountsPageSize, after: accountsAfter) {
            "\(Console.root)?" + ($0.map { "accounts_after=\($0)" } ?? "") + "#accounts"
        }
        return RenderedPage(html: render("overview", context), refresh: refresh)
    }

    // A sender account --------------------------------------------------------------------------

    func account(_ id: Int64, _ session: ConsoleLogins.Session, on connection: Connection) throws -> RenderedPage {
        let found = try records("""
            select a.id, a.display_name, a.status::text as status, coalesce(a.status_reason, '') as status_reason,
                   p.name as plan, a.time_zone, w.name as workspace,
                   (clock_now() at time zone a.time_zone)::date as local_day,
                   to_char(clock_now() at time zone a.time_zone, 'HH24:MI') as local_time,
                   coalesce(u.inmails, 0) as inmails_today, a.daily_inmail_limit,
                   coalesce(u.messages, 0) as messages_today, a.daily_message_limit,
                   case
                       when a.status <> 'active' then 'not while ' || a.status
                       when coalesce(u.inmails, 0) >= a.daily_inmail_limit then
                           to_char(next_working_moment(a, ((clock_now() at time zone a.time_zone)::date + 1)::timestamp at time zone a.time_zone)
                                   at time zone a.time_zone, 'YYYY-MM-DD HH24:MI') || ' (daily limit reached, S6)'
                       else to_char(greatest(next_working_moment(a, clock_now()), coalesce(a.next_send_at, clock_now()))
                                    at time zone a.time_zone, 'YYYY-MM-DD HH24:MI')
                   end as next_send,
                   credit_balance(a.id) as credit_balance, credit_held(a.id) as credit_held, p.credit_cap,
                   a.credit_reserve, p.monthly_allotment,
                   next_billing_cycle_start(a.billing_anchor, p.renewal_anchor, (clock_now() at time zone 'UTC')::date) as next_renewal
            from sender_accounts a
            join plans p on p.code = a.plan_code
            join workspaces w on w.id = a.workspace_id
            left join daily_usage u on u.account_id = a.id and u.local_day = (clock_now() at time zone a.time_zone)::date
            where a.id = \(id)
            """, on: connection)
        guard let account = found.first else { return try notFound("sender account \(id)", session, on: connection) }
        var context = try frame(session, title: account["display_name"] ?? "", on: connection)
        context["account"] = account
        context["expiring"] = try records("""
            select g.source, g.remaining, to_char(g.expires_at at time zone 'UTC', 'YYYY-MM-DD') as expires_on,
                   case when g.expires_at < clock_now() + interval '30 days' then 'within 30 days' else '' end as soon
            from credit_grants g
            where g.account_id = \(id) and g.remaining > 0 and g.expires_at > clock_now()
            order by g.expires_at, g.id
            """, on: connection)
        // The newest 100 entries, each with the balance after it (the sum of all entries up to it).
        context["ledger"] = try records("""
            select id, to_char(at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') as at, entry, amount, coalesce(note, '') as note, balance
            from (select l.*, sum(l.amount) over (order by l.id) as balance from credit_ledger l where l.account_id = \(id)) l
            order by id desc limit 100
            """, on: connection)
        return RenderedPage(html: render("account", context))
    }

    // A campaign ----------------------------------------------------------------------------------

    func campaign(_ id: Int64, _ session: ConsoleLogins.Session, on connection: Connection) throws -> RenderedPage {
        let found = try records("""
            select campaign_id, workspace, campaign, status::text as status, contacts, inmails_sent, free_inmails,
                   credit_inmails, connection_messages, accepted, declined, responses, responders,
                   coalesce(response_rate_pct, 0) as response_rate_pct, follow_ups_sent, credits_spent, credits_back,
                   waiting, in_sequence, finished, skipped, failed
            from campaign_report where campaign_id = \(id)
            """, on: connection)
        guard let campaign = found.first else { return try notFound("campaign \(id)", session, on: connection) }
        var context = try frame(session, title: campaign["campaign"] ?? "", on: connection)
        context["campaign"] = campaign
        context["steps"] = try records("""
            select o.step, count(*) filter (where o.state = 'sent') as sent,
                   count(*) filter (where o.accepted) as accepted, count(*) filter (where o.declined) as declined,
                   count(*) filter (where o.responder) as replied,
                   round(100.0 * count(*) filter (where o.responded) / nullif(count(*) filter (where o.state = 'sent'), 0), 1) as response_rate_pct,
                   count(*) filter (where o.uses_credit and o.state = 'sent') as credits_spent,
                   count(*) filter (where o.credited_back) as credits_back
            from message_outcomes o where o.campaign_id = \(id)
            group by o.step order by o.step
            """, on: connection)
        context["senders"] = try records("""
            select c.account_id, a.display_name, sum(c.inmails_sent) as inmails_sent, sum(c.connection_messages) as connection_messages,
                   sum(c.accepted) as accepted, sum(c.declined) as declined, sum(c.responders) as responders,
                   sum(c.follow_ups_sent) as follow_ups_sent, sum(c.credits_spent) as credits_spent, sum(c.credits_back) as credits_back
            from message_counts c join sender_accounts a on a.id = c.account_id
            where c.campaign_id = \(id) and c.account_id is not null
            group by c.account_id, a.display_name order by c.account_id
            """, on: connection)
        // One read of the campaign's messages: each counts on the day it was sent and on the day
        // it was answered. (The business clock read once, not per message.)
        let days = try records("""
            with now as (select clock_now() as now),
            days as (
                select d::date as day from now, generate_series((now at time zone 'UTC')::date - 29, (now at time zone 'UTC')::date,
                                                                interval '1 day') d
            ),
            events as (
                select e.day, e.answered
                from now, messages m
                cross join lateral (values ((m.sent_at at time zone 'UTC')::date, false),
                                           ((m.responded_at at time zone 'UTC')::date, true)) as e(day, answered)
                where m.campaign_id = \(id) and m.state = 'sent'
                  and (m.sent_at >= now - interval '31 days' or m.responded_at >= now - interval '31 days')
            )
            select to_char(d.day, 'MM-DD') as label, count(e.day) filter (where not e.answered) as sent,
                   count(e.day) filter (where e.answered) as answered
            from days d left join events e on e.day = d.day
            group by d.day order by d.day
            """, on: connection)
        context["daily_chart"] = SVGChart.bars(
            labels: days.map { $0["label"] ?? "" },
            series: [("messages sent", days.map { Double($0["sent"] ?? "") ?? 0 }, "#2b6cb0"),
                     ("answered", days.map { Double($0["answered"] ?? "") ?? 0 }, "#2f7d4f")],
            title: "Messages sent and answered per day, last 30 days (UTC)")
        return RenderedPage(html: render("campaign", context))
    }

    // A campaign's People ------------------------------------------------------------------------

    /// A page of a campaign's People, filtered (a page of its own, so that paging reads only
    /// the page: instant in a campaign of 100,000 contacts).
    func people(_ id: Int64, _ filter: PeopleFilter, _ session: ConsoleLogins.Session, on connection: Connection) throws -> RenderedPage {
        let found = try records("""
            select c.id as campaign_id, c.name as campaign, w.name as workspace, c.status::text as status
            from campaigns c join workspaces w on w.id = c.workspace_id where c.id = \(id)
            """, on: connection)
        guard let campaign = found.first else { return try notFound("campaign \(id)", session, on: connection) }
        var context = try frame(session, title: "People · " + (campaign["campaign"] ?? ""), on: connection)
        context["campaign"] = campaign
        let people = try records("""
            select contact_id, coalesce(nullif(concat_ws(' ', first_name, last_name), ''), member_key) as name,
                   coalesce(company, '') as company, member_key, status::text as status, coalesce(reason, '') as reason,
                   coalesce(last_event, '') as last_event, coalesce(sender_account_id::text, '') as sender_account_id
            from reader_people(\(id), \(filter.status)::contact_status, \(filter.search), \(filter.after), \(PeopleFilter.pageSize))
            """, on: connection)
        context["people"] = people
        context["statuses"] = PeopleFilter.statuses.map { ["status": $0, "selected": $0 == filter.status] }
        context["search"] = filter.search ?? ""
        context["pager"] = pager("page", rows: people, idColumn: "contact_id", pageSize: PeopleFilter.pageSize, after: filter.after) {
            peopleLink(id, filter, after: $0)
        }
        return RenderedPage(html: render("people", context))
    }

    /// The `pager` partial's context for a page of `rows` in id order: a link to the next page
    /// when this one is full, and to the first when this one is not.
    private func pager(_ noun: String, rows: [[String: String]], idColumn: String, pageSize: Int, after: Int64,
                       link: (String?) -> String) -> [String: String] {
        var pager = ["noun": noun]
        if rows.count == pageSize, let last = rows.last?[idColumn] { pager["next"] = link(last) }
        if after > 0 { pager["first"] = link(nil) }
        return pager
    }

    private func peopleLink(_ campaign: Int64, _ filter: PeopleFilter, after: String?) -> String {
        var query: [String] = []
        if let status = filter.status { query.append("status=\(status)") }
        if let search = filter.search, let encoded = search.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
            query.append("q=\(encoded)")
        }
        if let after { query.append("after=\(after)") }
        return "\(Console.root)/campaigns/\(campaign)/people?" + query.joined(separator: "&")
    }

    // A job -------------------------------------------------------------------------------------------

    func job(_ id: Int64, _ session: ConsoleLogins.Session, on connection: Connection) throws -> RenderedPage {
        let found = try records("""
            select id, kind, state::text as state, args::text as args, attempt, max_attempts, coalesce(partition_key, '') as account_id,
                   to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as created_at,
                   to_char(run_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as run_at,
                   coalesce(to_char(finished_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') as finished_at,
                   errors::text as errors_json
            from reader_job(\(id))
            """, on: connection)
        guard let job = found.first else { return try notFound("job \(id)", session, on: connection) }
        var context = try frame(session, title: "Job \(id)", on: connection)
        context["job"] = job
        context["errors"] = try records("""
            select e->>'attempt' as attempt, e->>'at' as at, coalesce(e->>'action', '') as action, e->>'error' as error
            from reader_job(\(id)) j, jsonb_array_elements(j.errors) e order by (e->>'attempt')::int
            """, on: connection)
        return RenderedPage(html: render("job", context))
    }

    private func notFound(_ what: String, _ session: ConsoleLogins.Session, on connection: Connection) throws -> RenderedPage {
        var context = try frame(session, title: "Not found", on: connection)
        context["what"] = what
        return RenderedPage(status: .notFound, html: render("not_found", context))
    }

    /// Every row of `sql`, column name to text (NULL as "").
    private func records(_ sql: SQL, on connection: Connection) throws -> [[String: String]] {
        let result = try connection.query(sql)
        let names = result.columnNames
        return try result.rows.map { row in
            var record: [String: String] = [:]
            for (index, name) in names.enumerated() {
                record[name] = try row.decode(String?.self, at: index) ?? ""
            }
            return record
        }
    }
}
