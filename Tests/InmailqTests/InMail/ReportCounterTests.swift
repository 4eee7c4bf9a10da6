import Foundation
import InMail
import Postgres
import Testing

/// The reports' counters (message_counts, contact_counts) against the numbers counted from the
/// messages, responses and contacts themselves, as the report views counted them before (C4).
@Suite("Report counters")
struct ReportCounterTests {
    /// C4's numbers per campaign, per account and per both, counted from the rows themselves.
    static let countedFromRows: SQL = """
        select coalesce(jsonb_agg(to_jsonb(s) order by s.campaign_id nulls first, s.account_id nulls first), '[]')::text as stats
        from (
            select campaign_id, account_id,
                   count(*) filter (where step = 0 and channel = 'inmail') as inmails_sent,
                   count(*) filter (where step = 0 and channel = 'inmail' and not uses_credit) as free_inmails,
                   count(*) filter (where step = 0 and uses_credit) as credit_inmails,
                   count(*) filter (where step = 0 and channel = 'message') as connection_messages,
                   count(*) filter (where step = 0 and accepted) as accepted,
                   count(*) filter (where step = 0 and declined) as declined,
                   count(*) filter (where step = 0 and responded) as responses,
                   count(distinct contact_id) filter (where responder) as responders,
                   round(100.0 * count(*) filter (where step = 0 and responded) / nullif(count(*) filter (where step = 0), 0), 1)
                       as response_rate_pct,
                   count(*) filter (where step > 0) as follow_ups_sent,
                   count(*) filter (where uses_credit) as credits_spent,
                   count(*) filter (where credited_back) as credits_back
            from message_outcomes where state = 'sent'
            group by grouping sets ((campaign_id), (account_id), (campaign_id, account_id))
        ) s
        """

    /// The same from the counters (the message_stats view).
    static let fromCounters: SQL = """
        select coalesce(jsonb_agg(to_jsonb(s) order by s.campaign_id nulls first, s.account_id nulls first), '[]')::text as stats
        from message_stats s
        """

    /// Contacts per campaign, status and reason, counted and from the counters.
    static let contactsCounted: SQL = """
        select coalesce(jsonb_agg(jsonb_build_array(campaign_id, status, reason, n) order by campaign_id, status, reason), '[]')::text as c
        from (select campaign_id, status, reason, count(*) as n from contacts group by 1, 2, 3) x
        """
    static let contactsFromCounters: SQL = """
        select coalesce(jsonb_agg(jsonb_build_array(campaign_id, status, reason, n) order by campaign_id, status, reason), '[]')::text as c
        from (select campaign_id, status, reason, sum(contacts) as n from contact_counts group by 1, 2, 3 having sum(contacts) <> 0) x
        """

    func expectCountersAgree(_ connection: Connection, _ comment: Comment) throws {
        let counted = try connection.queryOne(Self.countedFromRows).decode(String.self, "stats")
        #expect(counted != "[]")
        #expect(try connection.queryOne(Self.fromCounters).decode(String.self, "stats") == counted, comment)
        #expect(try connection.queryOne(Self.contactsFromCounters).decode(String.self, "c")
                == (try connection.queryOne(Self.contactsCounted).decode(String.self, "c")), comment)
    }

    /// Sends, follow-ups, every kind of response (R1 credits back, R4 responders, R5 declines), a
    /// skipped contact (S2), then hand-typed changes: the counters agree with the rows after each
    /// step, and again once folded, one row per key.
    @Test func countersAgreeWithTheRowsThroughAWholeCampaignAndAfterFolding() throws {
        let f = try OutreachFixture()
        let (first, second) = (try f.sender(), try f.sender())
        let campaign = try f.campaign(senders: [first, second], followUpDelays: [3, 5])
        let other = try f.campaign(senders: [first], followUpDelays: [3])
        let names = ["default", "edited", "reply", "declined", "not-interested", "interested", "silent", "later"]
        let contacts = try f.contacts(campaign, names)
        try f.contacts(campaign, ["open"], set: "open_profile = true")
        try f.contacts(campaign, ["opted-out"], set: "opted_out = true")
        let elsewhere = try f.contacts(other, ["elsewhere-accepts", "elsewhere-replies"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try Campaigns.activate(campaign: other, on: f.connection)
        try f.drain()
        try expectCountersAgree(f.connection, "after the first InMails")

        _ = try f.respond(contacts[0], .acceptedDefault)
        _ = try f.respond(contacts[1], .acceptedEdited, text: "Sure")
        _ = try f.respond(contacts[2], .reply, text: "Tell me more")
        _ = try f.respond(contacts[3], .declined)
        _ = try f.respond(contacts[4], .notInterested)
        _ = try f.respond(contacts[5], .interested)
        _ = try f.respond(contacts[5], .acceptedDefault)  // a second kind for the same message
        _ = try f.respond(contacts[5], .interested)       // the same kind again: a duplicate
        _ = try f.respond(elsewhere[0], .acceptedDefault)
        _ = try f.respond(elsewhere[1], .acceptedDefault)
        try expectCountersAgree(f.connection, "after the responses")

        try f.advance("3 days 1 minute")
        _ = try f.respond(contacts[0], step: 1, .reply, text: "Now I reply")  // a responder through a follow-up
        _ = try f.respond(elsewhere[1], step: 1, .reply, text: "Yes")
        try f.advance("6 days")
        try expectCountersAgree(f.connection, "after the follow-ups")

        // Hand-typed changes count too: a response taken back, a credit-back flag set, a
        // waiting contact removed, a contact's status moved.
        try f.connection.execute("delete from responses where message_id = (select id from messages where contact_id = \(contacts[2]) and step = 0)")
        try f.connection.execute("update responses set credited_back = true where kind = 'accepted_default'")
        try f.connection.execute("delete from contacts where id = \(contacts[7]) and status = 'waiting'")
        try f.connection.execute("update contacts set status = 'failed', reason = 'by hand' where id = \(contacts[6])")
        try expectCountersAgree(f.connection, "after hand-typed changes")

        // The agency's report adds its campaigns up, in the database and on the command line.
        let agency = try f.count("select agency_id from workspaces where id = \(f.workspace)")
        let totals = try f.connection.queryOne(
            "select inmails_sent, responders, contacts, campaigns from agency_report where agency_id = \(agency)")
        #expect(try totals.decode(Int.self, "inmails_sent") == f.count("select count(*) from messages where step = 0 and channel = 'inmail' and state = 'sent'"))
        #expect(try totals.decode(Int.self, "responders") == f.count("select sum(responders) from campaign_report"))
        #expect(try totals.decode(Int.self, "contacts") == f.count("select count(*) from contacts"))
        #expect(try totals.decode(Int.self, "campaigns") == 2)
        let printed = try InmailqProcess.run(["report", "--agency", "\(agency)", "--database-url", f.db.url])
        #expect(printed.status == 0 && printed.output.contains("(2 campaigns)"), "\(printed.output)")
        let unknown = try InmailqProcess.run(["report", "--agency", "999999", "--database-url", f.db.url])
        #expect(unknown.status != 0 && unknown.output.contains("no agency with id 999999"), "\(unknown.output)")

        let allRows: SQL = "select (select count(*) from message_counts) + (select count(*) from contact_counts)"
        let rows = try f.count(allRows)
        let folded = try f.connection.queryOne("select compact_report_counters() as n").decode(Int.self, "n")
        #expect(folded > 0)
        #expect(try f.count(allRows) == rows - folded)
        let keysWithRowsToFold: SQL = """
            select (select count(*) from (select 1 from message_counts group by campaign_id, account_id having count(*) > 1) m)
                 + (select count(*) from (select 1 from contact_counts group by campaign_id, status, reason having count(*) > 1) c)
            """
        #expect(try f.count(keysWithRowsToFold) == 0)
        #expect(try f.connection.queryOne("select compact_report_counters() as n").decode(Int.self, "n") == 0)
        try expectCountersAgree(f.connection, "after folding")

        // Then a change is folded alone: the keys it touched (a campaign, and the campaign with an
        // account) come to one row each again, and the rows of the keys it did not touch are not
        // rewritten (the same ctid).
        let otherCampaignsRows: SQL = "select string_agg(ctid::text, ' ' order by ctid) as r from message_counts where campaign_id = \(other)"
        let firstCampaignsContactRows: SQL = "select string_agg(ctid::text, ' ' order by ctid) as r from contact_counts where campaign_id = \(campaign)"
        let untouched = (try f.connection.queryOne(otherCampaignsRows).decode(String.self, "r"),
                         try f.connection.queryOne(firstCampaignsContactRows).decode(String.self, "r"))
        try f.connection.execute("delete from responses where message_id = (select id from messages where contact_id = \(contacts[3]) and step = 0)")
        try f.connection.execute("update contacts set status = 'failed', reason = 'by hand' where id = \(elsewhere[0])")
        #expect(try f.count(keysWithRowsToFold) > 0)
        #expect(try f.connection.queryOne("select compact_report_counters() as n").decode(Int.self, "n") > 0)
        #expect(try f.count(keysWithRowsToFold) == 0)
        #expect(try f.connection.queryOne(otherCampaignsRows).decode(String.self, "r") == untouched.0)
        #expect(try f.connection.queryOne(firstCampaignsContactRows).decode(String.self, "r") == untouched.1)
        try expectCountersAgree(f.connection, "after a change and a second folding")
    }
}
