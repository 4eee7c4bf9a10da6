import Foundation
import Postgres
import Queue

/// A LinkedIn people search or a Sales Navigator search URL, checked.
public struct SearchURL: Sendable, Equatable {
    public enum Kind: String, Sendable { case linkedin, salesNavigator = "sales_navigator" }

    public let url: String
    public let kind: Kind

    /// Accepts `linkedin.com/search/results/people/...` and Sales Navigator's
    /// `linkedin.com/sales/search/people...` or `.../sales/search/lead...`, with or without scheme.
    public init(_ raw: String) throws(SearchURLError) {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let text = trimmed.range(of: "^[A-Za-z][A-Za-z0-9+.-]*://", options: .regularExpression) == nil ? "https://" + trimmed : trimmed
        guard let components = URLComponents(string: text), let host = components.host?.lowercased(),
              ["http", "https"].contains(components.scheme?.lowercased() ?? "")
        else { throw SearchURLError(input: raw, reason: "not a web link") }
        guard host == "linkedin.com" || host.hasSuffix(".linkedin.com") else {
            throw SearchURLError(input: raw, reason: "not a linkedin.com link (host \(host))")
        }
        let path = components.path.lowercased()
        if path.hasPrefix("/search/results/people") {
            kind = .linkedin
        } else if path.hasPrefix("/sales/search/people") || path.hasPrefix("/sales/search/lead") {
            kind = .salesNavigator
        } else {
            throw SearchURLError(input: raw, reason: "not a people search (expected /search/results/people/ or /sales/search/people)")
        }
        url = text
    }
}

public struct SearchURLError: Error, Equatable, Sendable, CustomStringConvertible {
    public let input: String
    public let reason: String
    public var description: String { "\"\(input.prefix(120))\": \(reason)" }
}

/// Contacts found by search URLs (C2): a `contacts.search` job pages through the results,
/// adding each page's people and storing the next page's cursor in the same transaction.
public enum Searches {
    /// The job that runs one page of a search, then runs again for the next.
    public static let kind = "contacts.search"

    struct Args: Codable {
        let search_id: Int64
    }

    /// Records a search of `url` for campaign `campaign`, at most `max` people, and enqueues its
    /// job. Returns the search's id.
    public static func start(campaign: Int64, url: SearchURL, max: Int, on connection: Connection) throws -> Int64 {
        try connection.transaction { connection in
            guard try connection.query("select 1 from campaigns where id = \(campaign)").rowCount > 0 else {
                throw UnknownID("campaign", campaign)
            }
            let id = try connection.queryOne(
                "insert into contact_searches (campaign_id, url, max_contacts) values (\(campaign), \(url.url), \(max)) returning id"
            ).decode(Int64.self, "id")
            try JobQueue.enqueue(
                [NewJob(kind: kind, args: try JSONText(encoding: Args(search_id: id)), maxAttempts: 25, uniqueKey: "search:\(id)")],
                on: connection)
            return id
        }
    }

    /// The handler: one page per run. A run that dies before its commit asks for the same
    /// page again; the campaign's one-row-per-member rule keeps anyone from being added twice.
    public static func handler(courier: any Courier) -> JobHandler {
        { job, context in try runPage(job, context: context, courier: courier) }
    }

    static func runPage(_ job: Job, context: JobContext, courier: any Courier) throws -> JobOutcome {
        let args = try job.args.decode(Args.self)
        guard let search = try context.connection().query(
            "select campaign_id, url, max_contacts, cursor, found, status from contact_searches where id = \(args.search_id)"
        ).first else {
            return .cancelled(reason: "no search with id \(args.search_id)")
        }
        guard try search.decode(String.self, "status") == "running" else { return .completed }
        let found = try search.decode(Int.self, "found")
        let room = try search.decode(Int.self, "max_contacts") - found
        let url = try search.decode(String.self, "url")
        let cursor = try search.decode(String?.self, "cursor")
        let page: SearchPage
        context.releaseConnection()  // no session is held while the courier works
        do {
            page = try courier.search(url, cursor: cursor)
        } catch {
            switch error {
            case .rateLimited(let after): return .snoozed(delay: after)
            case .retryLater: return .failed(error: error.description, retryIn: .seconds(60))
            default:
                try context.connection().execute(
                    """
                    update contact_searches set status = 'failed', reason = \(error.description), finished_at = clock_now()
                    where id = \(args.search_id)
                    """)
                return .cancelled(reason: error.description)
            }
        }
        let people = Array(page.people.prefix(room))
        let done = try context.connection().transaction { connection in
            let report = try Contacts.add(
                campaign: try search.decode(Int64.self, "campaign_id"),
                links: people.enumerated().map { (found + $0.offset + 1, $0.element.profileURL) },
                details: people.map(\.details), on: connection)
            let done = page.nextCursor == nil || people.count >= room
            try connection.execute(
                """
                update contact_searches
                set cursor = \(page.nextCursor), pages = pages + 1, found = found + \(people.count), added = added + \(report.added),
                    status = case when \(done) then 'done' else status end,
                    finished_at = case when \(done) then clock_now() end
                where id = \(args.search_id) and status = 'running'
                """)
            return done
        }
        context.logger.info("search page", metadata: [
            "search_id": "\(args.search_id)", "people": "\(people.count)", "done": "\(done)",
        ])
        return done ? .completed : .snoozed(delay: .zero)
    }
}
