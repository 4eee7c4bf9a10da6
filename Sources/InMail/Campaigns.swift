import Foundation
import Postgres

/// Campaigns of a client workspace: steps (one InMail and up to five follow-ups, C3), a pool of
/// sender accounts, and activation once every template is sound (S5).
public enum Campaigns {
    /// Fields every contact has; a template may also use any custom field of the campaign's contacts.
    public static let standardFields: Set<String> = ["first_name", "last_name", "company", "title"]

    /// Creates a draft campaign, its steps copied from `seed` when given (C1).
    public static func create(workspace: Int64, name: String, seed: Int64? = nil, on connection: Connection) throws -> Int64 {
        try connection.queryOne("select create_campaign(\(workspace), \(name), \(seed)::bigint) as id").decode(Int64.self, "id")
    }

    /// Sets step `position` (0 is the InMail, with a subject; 1-5 are follow-ups sent `delayDays`
    /// after the previous step). A malformed template is refused here; unknown fields and
    /// lengths are checked at activation, when the contacts' fields are known.
    public static func setStep(
        campaign: Int64, position: Int, subject: String?, body: String, delayDays: Int?, on connection: Connection
    ) throws {
        try InputTooLong.check(body, "step \(position) body (template)", limit: 10_000)
        try InputTooLong.check(subject, "step \(position) subject (template)", limit: 1_000)
        _ = try MessageTemplate(body)
        if let subject { _ = try MessageTemplate(subject) }
        try connection.execute(
            """
            insert into campaign_steps (campaign_id, position, subject, body, delay_days)
            values (\(campaign), \(position), \(subject), \(body), \(delayDays))
            on conflict (campaign_id, position)
            do update set subject = excluded.subject, body = excluded.body, delay_days = excluded.delay_days
            """)
    }

    /// Adds a sender account of the campaign's workspace to its pool.
    public static func addSender(campaign: Int64, account: Int64, on connection: Connection) throws {
        try connection.execute(
            "insert into campaign_senders (campaign_id, account_id) values (\(campaign), \(account)) on conflict do nothing")
    }

    /// Checks every step's templates (known fields, S5 limits) and activates the campaign;
    /// the first problem is thrown, naming the step and the field. Returns how many contacts
    /// were queued to send.
    @discardableResult
    public static func activate(campaign: Int64, on connection: Connection) throws -> Int {
        try connection.transaction { connection in
            let limits = try Dictionary(uniqueKeysWithValues: connection.query("select part, max_characters from message_limits").rows.map {
                (try $0.decode(String.self, "part"), try $0.decode(Int.self, "max_characters"))
            })
            let custom = try connection.query(
                "select distinct jsonb_object_keys(custom_fields) as field from contacts where campaign_id = \(campaign)"
            ).rows.map { try $0.decode(String.self, "field") }
            let known = standardFields.union(custom)
            let steps = try connection.query(
                "select position, subject, body from campaign_steps where campaign_id = \(campaign) order by position").rows
            for step in steps {
                let position = try step.decode(Int.self, "position")
                let name = position == 0 ? "step 0 (InMail)" : "step \(position) (follow-up)"
                if let subject = try step.decode(String?.self, "subject") {
                    try MessageTemplate(subject).validate(knownFields: known, limit: limits["subject"] ?? 200, part: "\(name) subject")
                }
                try MessageTemplate(try step.decode(String.self, "body")).validate(
                    knownFields: known, limit: limits["body"] ?? 1_900, part: "\(name) body")
            }
            try connection.execute("select activate_campaign(\(campaign))")
            return try enqueueSends(campaign: campaign, on: connection)
        }
    }

    /// Gives the active campaign's waiting contacts a sender from its pool and a send job
    /// (opted-out members are skipped, S2). Safe to repeat. Returns how many jobs it enqueued.
    @discardableResult
    public static func enqueueSends(campaign: Int64, on connection: Connection) throws -> Int {
        try connection.queryOne("select enqueue_sends(\(campaign)) as n").decode(Int.self, "n")
    }

    /// Pauses an active campaign: its jobs wait (they are deferred when claimed) until it is
    /// activated again.
    public static func pause(campaign: Int64, on connection: Connection) throws {
        try connection.execute("select pause_campaign(\(campaign))")
    }

    /// Ends a campaign as `completed` or `archived`: contacts not yet written to are skipped and
    /// nothing more is sent; responses to what was sent are still recorded.
    public static func end(campaign: Int64, as status: String, on connection: Connection) throws {
        try connection.execute("select end_campaign(\(campaign), \(status))")
    }
}

/// What adding contacts did: counts by outcome, and each rejected input with its reason.
public struct ContactAddReport: Sendable, Equatable, CustomStringConvertible, Encodable {
    public struct Rejection: Sendable, Equatable, Encodable {
        public let line: Int
        public let input: String
        public let reason: String
    }

    public var added = 0
    public var duplicatesInInput = 0
    public var alreadyInCampaign = 0
    public var doNotContact = 0
    public var inAnotherCampaign = 0
    public var rejected: [Rejection] = []

    enum CodingKeys: String, CodingKey {
        case added, duplicatesInInput = "duplicates_in_input", alreadyInCampaign = "already_in_campaign"
        case doNotContact = "do_not_contact", inAnotherCampaign = "in_another_campaign", rejected
    }

    public var description: String {
        var lines = [
            "added \(added)", "duplicates in the input \(duplicatesInInput)", "already in the campaign \(alreadyInCampaign)",
            "on the do-not-contact list \(doNotContact)", "in another active campaign of the workspace \(inAnotherCampaign)",
            "rejected \(rejected.count)",
        ]
        lines += rejected.map { "  line \($0.line): \($0.input): \($0.reason)" }
        return lines.joined(separator: "\n")
    }
}

/// What is known of a contact besides its profile link (a search result, for instance).
public struct ContactDetails: Sendable, Equatable {
    public var firstName: String?
    public var lastName: String?
    public var company: String?
    public var title: String?
    public var openProfile = false

    public init(firstName: String? = nil, lastName: String? = nil, company: String? = nil, title: String? = nil, openProfile: Bool = false) {
        self.firstName = firstName
        self.lastName = lastName
        self.company = company
        self.title = title
        self.openProfile = openProfile
    }
}

/// Contacts of a campaign, added from pasted profile links (C2).
public enum Contacts {
    /// Splits pasted text on newlines and commas, keeping each link's line number (from 1).
    /// A Sales Navigator link keeps its own commas (`/sales/lead/<id>,NAME_SEARCH,<token>`):
    /// what follows one of its commas and does not look like a link belongs to it.
    public static func links(inPastedText text: String) -> [(line: Int, text: String)] {
        var links: [(line: Int, text: String)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var previousIsSalesLink = false
            for part in line.split(separator: ",") {
                let link = part.trimmingCharacters(in: .whitespacesAndNewlines)
                let looksLikeLink = link.lowercased().contains("linkedin.") || link.contains("://") || link.lowercased().hasPrefix("www.")
                if previousIsSalesLink && !looksLikeLink && !link.isEmpty {
                    links[links.count - 1].text += "," + link
                    continue
                }
                if !link.isEmpty { links.append((index + 1, link)) }
                previousIsSalesLink = link.lowercased().contains("/sales/")
            }
        }
        return links
    }

    /// Puts the members the links point at on the workspace's do-not-contact list and stops
    /// every sequence of the workspace aimed at them. Returns how many were newly listed, how
    /// many contacts were stopped, and the links that are not profiles (with their lines).
    public static func doNotContact(
        workspace: Int64, links: [(line: Int, text: String)], reason: String?, on connection: Connection
    ) throws -> (listed: Int, stopped: Int, rejected: [ContactAddReport.Rejection]) {
        try InputTooLong.check(reason, "the reason", limit: 500)
        let (members, rejected) = memberKeys(links)
        let row = try connection.queryOne(
            "select * from add_to_do_not_contact(\(workspace), \(members.map(\.key))::text[], \(reason))")
        return (try row.decode(Int.self, "listed"), try row.decode(Int.self, "stopped"), rejected)
    }

    /// Each link's member key (with the link's position in `links`), and the links that are not profiles.
    static func memberKeys(_ links: [(line: Int, text: String)]) -> (members: [(index: Int, key: String)], rejected: [ContactAddReport.Rejection]) {
        var members: [(Int, String)] = []
        var rejected: [ContactAddReport.Rejection] = []
        for (index, (line, text)) in links.enumerated() {
            do {
                members.append((index, try MemberKey(profileURL: text).value))
            } catch {
                rejected.append(.init(line: line, input: text, reason: error.description))
            }
        }
        return (members, rejected)
    }

    /// Adds the members the links point at, in one statement, with what else is known of each
    /// (`details`, in the order of `links`). Invalid links, duplicates within the input and the
    /// campaign, members on the workspace's do-not-contact list and members in another
    /// in-progress campaign of the workspace are counted, not added. Runs in the caller's
    /// transaction when one is open, else in its own.
    public static func add(
        campaign: Int64, links: [(line: Int, text: String)], details: [ContactDetails]? = nil, on connection: Connection
    ) throws -> ContactAddReport {
        var report = ContactAddReport()
        var keys: [String] = []
        var urls: [String] = []
        var kept: [ContactDetails] = []
        var seen: Set<String> = []
        let (members, rejected) = memberKeys(links)
        report.rejected = rejected
        for (index, key) in members {
            guard seen.insert(key).inserted else {
                report.duplicatesInInput += 1
                continue
            }
            keys.append(key)
            urls.append(links[index].text)
            kept.append(details?[index] ?? ContactDetails())
        }
        guard !keys.isEmpty else { return report }
        func addKept(on connection: Connection) throws -> [Row] {
            // Taken before the checks, so they see what an earlier addition to the workspace added.
            try connection.execute("select lock_campaign_workspace(\(campaign))")
            let outcomes = try connection.query(
            """
            with input as (
                select * from unnest(\(keys)::text[], \(urls)::text[], \(kept.map(\.firstName))::text[],
                                     \(kept.map(\.lastName))::text[], \(kept.map(\.company))::text[], \(kept.map(\.title))::text[],
                                     \(kept.map(\.openProfile))::boolean[])
                    as i(member_key, profile_url, first_name, last_name, company, title, open_profile)
            ), target as (
                select id, workspace_id from campaigns where id = \(campaign)
            ), classified as (
                select i.*, t.workspace_id,
                    case when exists (select 1 from contacts c where c.campaign_id = t.id and c.member_key = i.member_key)
                              then 'already_in_campaign'
                         when exists (select 1 from do_not_contact d where d.workspace_id = t.workspace_id and d.member_key = i.member_key)
                              then 'do_not_contact'
                         when exists (select 1 from contacts c where c.workspace_id = t.workspace_id and c.member_key = i.member_key
                                                                 and c.in_progress)
                              then 'in_another_campaign'
                         else 'add' end as outcome
                from input i cross join target t
            ), added as (
                insert into contacts (campaign_id, workspace_id, member_key, profile_url, first_name, last_name, company, title, open_profile)
                select \(campaign), workspace_id, member_key, profile_url, first_name, last_name, company, title, open_profile
                from classified where outcome = 'add'
            )
            select outcome, count(*) as n from classified group by 1
            union all
            select 'no_campaign', 1 where not exists (select 1 from target)
            """).rows
            try Campaigns.enqueueSends(campaign: campaign, on: connection)  // nothing unless the campaign is active
            return outcomes
        }
        let outcomes = connection.isInTransaction ? try addKept(on: connection) : try connection.transaction(addKept)
        for row in outcomes {
            let n = try row.decode(Int.self, "n")
            switch try row.decode(String.self, "outcome") {
            case "add": report.added += n
            case "already_in_campaign": report.alreadyInCampaign += n
            case "do_not_contact": report.doNotContact += n
            case "in_another_campaign": report.inAnotherCampaign += n
            default: throw UnknownID("campaign", campaign)
            }
        }
        return report
    }
}
