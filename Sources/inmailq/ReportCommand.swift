import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq report`: C4's analytics per campaign and per sender account.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Per campaign and per sender: InMails sent, responses, credits, contacts (C4).",
        discussion: """
            Without options: every campaign, then every sender account; --agency: one agency's \
            campaigns added up. The numbers come from the views campaign_report, sender_report and \
            message_stats (which sql/admin/report.sql prints too) and agency_report; they add up counters \
            kept as messages, responses and contacts change, so a report costs the same at any size. \
            Response rate: first messages with any response, per first message sent; \
            responders: contacts who replied or accepted with an edited message (R4).
            """)

    @OptionGroup var options: GlobalOptions
    @Option(help: "Only this campaign.") var campaign: Int64?
    @Option(help: "Only this sender account.") var account: Int64?
    @Option(help: "Only this agency's totals: its campaigns added up.") var agency: Int64?
    @Flag(help: "One JSON object: {\"campaigns\": [...], \"senders\": [...]}, or {\"agency\": {...}}.") var json = false

    func validate() throws {
        if [campaign, account, agency].compactMap({ $0 }).count > 1 {
            throw ValidationError("give one of --campaign, --account and --agency")
        }
    }

    func run() throws {
        let connection = try options.connect()
        if let agency {
            guard let report = try Reports.agency(agency, on: connection) else { throw CommandFailure("no agency with id \(agency)") }
            print(json ? "{\"agency\": \(report)}" : Self.describeAgency(try JSONSerialization.jsonObject(with: Data(report.utf8)) as! [String: Any]))
            return
        }
        let campaigns = account == nil ? try Reports.campaigns(campaign, on: connection) : "[]"
        let senders = campaign == nil ? try Reports.senders(account, on: connection) : "[]"
        if json {
            print("{\"campaigns\": \(campaigns), \"senders\": \(senders)}")
            return
        }
        let campaignRows = try rows(campaigns)
        let senderRows = try rows(senders)
        if let campaign, campaignRows.isEmpty { throw CommandFailure("no campaign with id \(campaign)") }
        if let account, senderRows.isEmpty { throw CommandFailure("no sender account with id \(account)") }
        for row in campaignRows { print(Self.describeCampaign(row)) }
        for row in senderRows { print(Self.describeSender(row)) }
    }

    private func rows(_ json: String) throws -> [[String: Any]] {
        (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]) ?? []
    }

    static func describeCampaign(_ r: [String: Any]) -> String {
        var lines = [
            "Campaign \(r["campaign_id"]!) \"\(r["campaign"]!)\" (workspace \(r["workspace"]!), \(r["status"]!))",
            messageLine(r), responseLine(r),
            "  credits: \(r["credits_spent"]!) spent, \(r["credits_back"]!) credited back (R1)",
            "  contacts \(r["contacts"]!): \(r["waiting"]!) waiting, \(r["in_sequence"]!) in sequence, "
                + "\(r["finished"]!) finished, \(r["skipped"]!) skipped, \(r["failed"]!) failed",
        ]
        for (reason, count) in ((r["stopped_by_reason"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines.append("    \(reason): \(count)")
        }
        for sender in (r["senders"] as? [[String: Any]]) ?? [] {
            lines.append("  sender \(sender["account_id"]!): \(counted(sender["inmails_sent"], "InMail")) (\(sender["free_inmails"]!) free), "
                + "\(sender["accepted"]!) accepted, \(sender["declined"]!) declined, \(counted(sender["responders"], "responder")), "
                + "\(counted(sender["follow_ups_sent"], "follow-up")), \(counted(sender["credits_spent"], "credit")) spent, \(sender["credits_back"]!) back")
        }
        return lines.joined(separator: "\n")
    }

    static func describeAgency(_ r: [String: Any]) -> String {
        [
            "Agency \(r["agency_id"]!) \"\(r["agency"]!)\" (\(counted(r["campaigns"], "campaign")))",
            messageLine(r), responseLine(r),
            "  credits: \(r["credits_spent"]!) spent, \(r["credits_back"]!) credited back (R1)",
            "  contacts \(r["contacts"]!): \(r["waiting"]!) waiting, \(r["in_sequence"]!) in sequence, "
                + "\(r["finished"]!) finished, \(r["skipped"]!) skipped, \(r["failed"]!) failed",
        ].joined(separator: "\n")
    }

    static func describeSender(_ r: [String: Any]) -> String {
        [
            "Sender account \(r["account_id"]!) \"\(r["display_name"]!)\" (\(r["plan"]!), \(r["status"]!))",
            messageLine(r), responseLine(r),
            "  credits: \(r["credits_spent"]!) spent, \(r["credits_back"]!) credited back, \(r["credits_expired"]!) expired; "
                + "balance \(r["credit_balance"]!) of \(r["credit_cap"]!); \(r["contacts_waiting"]!) contacts waiting",
        ].joined(separator: "\n")
    }

    /// "1 InMail", "2 InMails": a count with its noun.
    private static func counted(_ value: Any?, _ noun: String) -> String {
        let text = value.map { "\($0)" } ?? "0"
        return "\(text) \(noun)\(text == "1" ? "" : "s")"
    }

    private static func messageLine(_ r: [String: Any]) -> String {
        "  InMails sent \(r["inmails_sent"]!) (\(r["free_inmails"]!) free to open profiles, \(r["credit_inmails"]!) with a credit); "
            + "messages to 1st-degree connections \(r["connection_messages"]!); follow-ups sent \(r["follow_ups_sent"]!)"
    }

    private static func responseLine(_ r: [String: Any]) -> String {
        "  accepted \(r["accepted"]!), declined \(r["declined"]!), responses \(r["responses"]!) (response rate \(r["response_rate_pct"]!)%), "
            + "responders \(r["responders"]!)"
    }
}
