import Foundation
import Postgres

/// The analytics of C4, read from the `campaign_report`, `agency_report`, `sender_report` and
/// `message_stats` views (the same numbers the `sql/admin` report scripts print), which sum the
/// counters kept as messages, responses and contacts change: a few rows per report, whatever the
/// agency's size.
public enum Reports {
    /// Campaign rows (all, or one), each with a `senders` array: its numbers per sender account.
    /// JSON text: an array of objects, ordered by campaign id.
    public static func campaigns(_ campaign: Int64? = nil, on connection: Connection) throws -> String {
        try connection.queryOne(
            """
            select coalesce(jsonb_agg(to_jsonb(r) || jsonb_build_object('senders', coalesce((
                       select jsonb_agg(to_jsonb(s) - 'campaign_id' order by s.account_id)
                       from message_stats s where s.campaign_id = r.campaign_id and s.account_id is not null), '[]'))
                   order by r.campaign_id), '[]')::text as report
            from campaign_report r
            where \(campaign)::bigint is null or r.campaign_id = \(campaign)
            """).decode(String.self, "report")
    }

    /// Sender account rows (all, or one), as a JSON array of objects ordered by account id.
    public static func senders(_ account: Int64? = nil, on connection: Connection) throws -> String {
        try connection.queryOne(
            """
            select coalesce(jsonb_agg(to_jsonb(r) order by r.account_id), '[]')::text as report
            from sender_report r
            where \(account)::bigint is null or r.account_id = \(account)
            """).decode(String.self, "report")
    }

    /// One agency's campaigns added up, as a JSON object; nil when there is no such agency.
    public static func agency(_ agency: Int64, on connection: Connection) throws -> String? {
        try connection.query("select to_jsonb(r)::text as report from agency_report r where r.agency_id = \(agency)")
            .first?.decode(String.self, "report")
    }
}
