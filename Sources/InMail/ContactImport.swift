import Foundation
import Postgres

/// Imports a CSV file of contacts into a campaign (C2): PostgreSQL's CSV parser loads the rows
/// into a staging table with COPY; each row is then checked in SQL, and the good ones are added
/// in one statement. A bad row never stops the good ones, and importing the same file again
/// adds nothing new.
public struct ContactImport {
    /// The contact fields a column can fill; every other column becomes a custom field.
    public enum Field: String, CaseIterable, Sendable {
        case profileURL = "profile_url", firstName = "first_name", lastName = "last_name", company, title
        case openProfile = "open_profile", optedOut = "opted_out", connectionDegree = "connection_degree"

        /// Header names recognised for each field, compared without case and punctuation.
        static let aliases: [String: Field] = [
            "profileurl": .profileURL, "linkedinurl": .profileURL, "linkedinprofile": .profileURL, "profile": .profileURL,
            "linkedin": .profileURL, "url": .profileURL, "profilelink": .profileURL, "linkedinprofileurl": .profileURL,
            "salesnavigatorurl": .profileURL, "leadurl": .profileURL,
            "firstname": .firstName, "first": .firstName, "givenname": .firstName,
            "lastname": .lastName, "last": .lastName, "surname": .lastName, "familyname": .lastName,
            "company": .company, "companyname": .company, "organization": .company, "organisation": .company, "employer": .company,
            "title": .title, "jobtitle": .title, "position": .title, "headline": .title,
            "openprofile": .openProfile, "open": .openProfile, "isopenprofile": .openProfile,
            "optedout": .optedOut, "optout": .optedOut, "inmailoptout": .optedOut,
            "connectiondegree": .connectionDegree, "degree": .connectionDegree, "connection": .connectionDegree,
        ]
    }

    /// Thrown when the file cannot be imported at all (no header, no profile column, a bad --map).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let campaign: Int64
    /// Explicit column-to-field choices (`--map "LinkedIn=profile_url"`); they win over the aliases.
    public var mapping: [String: String] = [:]
    /// The field delimiter; nil: the one of `,` `;` and tab that the header row uses most
    /// (spreadsheets in many countries write semicolons).
    public var delimiter: Character?
    /// Called now and then with (rows loaded, rows in all).
    public var progress: ((Int, Int) -> Void)?

    /// The longest row accepted, in bytes: a contact's fields together are far shorter.
    static let maximumRowBytes = 8_192

    public init(campaign: Int64) {
        self.campaign = campaign
    }

    /// A custom field's name for a header: lower case, runs of other characters as `_`.
    static func customFieldName(_ header: String) -> String {
        let lowered = header.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
        return String(lowered).split(separator: "_").joined(separator: "_")
    }

    static func normalized(_ header: String) -> String {
        String(header.lowercased().filter { $0.isLetter || $0.isNumber })
    }

    /// Imports `data`; returns the report. `rejectedRows`, when given, receives the rejected
    /// rows as CSV (the header plus a `reason` column), ready to fix and import again.
    public func run(_ data: Data, on connection: Connection, rejectedRows: ((Data) throws -> Void)? = nil) throws -> ContactAddReport {
        let separator = try delimiter.map { character -> UInt8 in
            guard let ascii = character.asciiValue, ascii != UInt8(ascii: "\""), !character.isNewline else {
                throw Failure(description: "the delimiter must be one ASCII character other than a quote or a newline")
            }
            return ascii
        } ?? Self.detectDelimiter(data)
        let file = CSVRecords(data, delimiter: separator)
        guard let header = file.records.first else { throw Failure(description: "the file is empty: a header row is needed") }
        let headers = file.fields(of: header, delimiter: separator).map { $0.trimmingCharacters(in: .whitespaces) }
        let columns = try assign(headers)
        guard let urlColumn = columns.firstIndex(where: { $0 == .field(.profileURL) }) else {
            throw Failure(description: "no profile URL column among \(headers.map { "\"\($0)\"" }.joined(separator: ", ")) "
                + "(name one profile_url, or use --map COLUMN=profile_url)")
        }

        var report = ContactAddReport()
        var rejected: [(record: CSVRecords.Record, reason: String)] = []
        var loaded: [CSVRecords.Record] = []
        for record in file.records.dropFirst() {
            if !record.quotesClosed {
                rejected.append((record, "a quoted field is never closed"))
            } else if !record.isUTF8 {
                rejected.append((record, "not UTF-8 text"))
            } else if file.bytes[record.range].contains(0) {
                rejected.append((record, "contains a NUL byte"))
            } else if record.range.count > Self.maximumRowBytes {
                rejected.append((record, "\(record.range.count) bytes long; a row may have at most \(Self.maximumRowBytes)"))
            } else if record.fieldCount > headers.count {
                rejected.append((record, "\(record.fieldCount) fields, but the header has \(headers.count)"))
            } else {
                loaded.append(record)
            }
        }

        try connection.transaction { connection in
            let staging = (1...headers.count).map { "c\($0) text" }.joined(separator: ", ")
            // The checks sort and hash every staged row: in memory, not in files.
            try connection.runScript(
                """
                set local work_mem = '64MB';
                create temporary table contact_import (record integer generated always as identity, \(staging)) on commit drop;
                create temporary table contact_import_keys (record integer primary key, member_key text, error text) on commit drop;
                """)
            // The good records as they are (a short one padded with empty fields): COPY parses them.
            let columnList = (1...headers.count).map { "c\($0)" }.joined(separator: ", ")
            var sent = 0
            let copy = "copy contact_import (\(columnList)) from stdin with (format csv, delimiter E'\\x\(String(separator, radix: 16))')"
            try connection.copyIn(SQL(unsafeText: copy)) { writer in
                for record in loaded {
                    try writer.write(file.bytes[record.range])
                    if record.fieldCount < headers.count {
                        try writer.write(repeatElement(separator, count: headers.count - record.fieldCount))
                    }
                    try writer.write(CollectionOfOne(UInt8(ascii: "\n")))
                    sent += 1
                    if sent % 10_000 == 0 { progress?(sent, loaded.count) }
                }
            }
            progress?(loaded.count, loaded.count)
            // Member keys come from the one parser of profile links (MemberKey).
            let urls = try connection.query(SQL(unsafeText: "select record, c\(urlColumn + 1) as url from contact_import")).rows
            try connection.copyIn("copy contact_import_keys (record, member_key, error) from stdin", rows: try urls.map { row in
                let record = try row.decode(Int.self, "record")
                guard let url = try row.decode(String?.self, "url"), !url.allSatisfy(\.isWhitespace) else {
                    return [String(record), nil, "no profile URL"]
                }
                do {
                    return [String(record), try MemberKey(profileURL: url).value, nil]
                } catch {
                    return [String(record), nil, "\(error)"]
                }
            })
            // Taken before the checks, so they see what an earlier import into the workspace added.
            try connection.execute("select lock_campaign_workspace(\(campaign))")
            for row in try connection.query(checkAndAdd(columns: columns)).rows {
                let outcome = try row.decode(String.self, "outcome")
                let count = try row.decode(Int.self, "n")
                switch outcome {
                case "add": report.added += count
                case "duplicate_in_file": report.duplicatesInInput += count
                case "already_in_campaign": report.alreadyInCampaign += count
                case "do_not_contact": report.doNotContact += count
                case "in_another_campaign": report.inAnotherCampaign += count
                case "no_campaign": throw UnknownID("campaign", campaign)
                default:
                    let record = loaded[try row.decode(Int.self, "record") - 1]
                    rejected.append((record, try row.decode(String.self, "reason")))
                }
            }
            try Campaigns.enqueueSends(campaign: campaign, on: connection)  // nothing unless the campaign is active
        }
        rejected.sort { $0.record.line < $1.record.line }
        report.rejected = rejected.map { record, reason in
            let text = String(decoding: file.bytes[record.range], as: UTF8.self)
            return .init(line: record.line, input: String(text.prefix(80)), reason: reason)
        }
        if let rejectedRows, !rejected.isEmpty {
            var output = Data(file.bytes[header.range]) + Data([separator]) + Data("reason\n".utf8)
            for (record, reason) in rejected {
                output += Data(file.bytes[record.range]) + Data([separator])
                output += Data("\"\(reason.replacingOccurrences(of: "\"", with: "\"\""))\"\n".utf8)
            }
            try rejectedRows(output)
        }
        return report
    }

    /// The delimiter the first line uses most, outside quotes: `,` (the default), `;` or tab.
    static func detectDelimiter(_ data: Data) -> UInt8 {
        var counts: [UInt8: Int] = [UInt8(ascii: ","): 0, UInt8(ascii: ";"): 0, UInt8(ascii: "\t"): 0]
        var inQuotes = false
        for byte in data.prefix(64 * 1024) {
            if byte == UInt8(ascii: "\"") { inQuotes.toggle() }
            if byte == UInt8(ascii: "\n") && !inQuotes { break }
            if !inQuotes, let count = counts[byte] { counts[byte] = count + 1 }
        }
        let (best, count) = counts.max { ($0.value, $0.key == UInt8(ascii: ",") ? 1 : 0) < ($1.value, $1.key == UInt8(ascii: ",") ? 1 : 0) }!
        return count > 0 ? best : UInt8(ascii: ",")
    }

    enum Column: Equatable {
        case field(Field)
        case custom(String)
        case ignored
    }

    /// What each column fills: `--map` first, then the known names, else a custom field.
    func assign(_ headers: [String]) throws -> [Column] {
        var byHeader: [String: Column] = [:]
        for (column, target) in mapping {
            guard headers.contains(column) else {
                throw Failure(description: "--map \(column)=\(target): the file has no column \"\(column)\" (it has \(headers.joined(separator: ", ")))")
            }
            if target == "ignore" {
                byHeader[column] = .ignored
            } else if let field = Field(rawValue: target) {
                byHeader[column] = .field(field)
            } else if target.hasPrefix("custom:") {
                byHeader[column] = .custom(Self.customFieldName(String(target.dropFirst("custom:".count))))
            } else {
                throw Failure(description: "--map \(column)=\(target): unknown field (use one of \(Field.allCases.map(\.rawValue).joined(separator: ", ")), custom:NAME or ignore)")
            }
        }
        var taken: Set<Field> = []
        for case .field(let field) in byHeader.values { taken.insert(field) }
        return headers.map { header in
            if let chosen = byHeader[header] { return chosen }
            if let field = Field.aliases[Self.normalized(header)], !taken.contains(field) {
                taken.insert(field)
                return .field(field)
            }
            let name = Self.customFieldName(header)
            return name.isEmpty ? .ignored : .custom(name)
        }
    }

    /// One statement: checks every staged row, counts duplicates, the do-not-contact list,
    /// members already in the campaign and members in another in-progress campaign of the
    /// workspace, adds the rest. Returns outcome counts and rejected records.
    private func checkAndAdd(columns: [Column]) -> SQL {
        func text(_ field: Field) -> String {
            guard let index = columns.firstIndex(of: .field(field)) else { return "null::text" }
            return "nullif(btrim(i.c\(index + 1)), '')"
        }
        var custom: [String] = []
        for (index, column) in columns.enumerated() {
            if case .custom(let name) = column {
                custom.append("'\(name.replacingOccurrences(of: "'", with: "''"))', nullif(btrim(i.c\(index + 1)), '')")
            }
        }
        let customFields = custom.isEmpty ? "'{}'::jsonb" : "jsonb_strip_nulls(jsonb_build_object(\(custom.joined(separator: ", "))))"
        let yes = "('true', 'yes', 'y', '1', 'x')"
        let no = "('false', 'no', 'n', '0', '')"
        return SQL(unsafeText: """
            with staged as (
                select i.record, k.member_key, k.error, \(text(.profileURL)) as profile_url,
                       \(text(.firstName)) as first_name, \(text(.lastName)) as last_name, \(text(.company)) as company,
                       \(text(.title)) as title, lower(\(text(.openProfile))) as open_profile, lower(\(text(.optedOut))) as opted_out,
                       lower(\(text(.connectionDegree))) as degree, \(customFields) as custom_fields
                from contact_import i join contact_import_keys k using (record)
            ), checked as (
                select s.*, case
                    when s.error is not null then s.error
                    when coalesce(s.open_profile, '') not in \(yes) and coalesce(s.open_profile, '') not in \(no)
                        then format('open profile "%s" is not yes or no', s.open_profile)
                    when coalesce(s.opted_out, '') not in \(yes) and coalesce(s.opted_out, '') not in \(no)
                        then format('opted out "%s" is not yes or no', s.opted_out)
                    when s.degree is not null and s.degree !~ '^[123](st|nd|rd|\\+)?$'
                        then format('connection degree "%s" is not 1, 2 or 3', s.degree)
                    when length(s.first_name) > 200 or length(s.last_name) > 200 or length(s.company) > 500 or length(s.title) > 500
                        then 'a name, company or title is too long (200 / 500 characters at most)'
                end as rejection
                from staged s
            ), target as (
                select id, workspace_id, clock_now() as now from campaigns where id = \(campaign)
            ), classified as (
                select c.*, t.workspace_id, t.now, case
                    when row_number() over (partition by c.member_key order by c.record) > 1 then 'duplicate_in_file'
                    when exists (select 1 from contacts x where x.campaign_id = t.id and x.member_key = c.member_key)
                        then 'already_in_campaign'
                    when exists (select 1 from do_not_contact d where d.workspace_id = t.workspace_id and d.member_key = c.member_key)
                        then 'do_not_contact'
                    when exists (select 1 from contacts x where x.workspace_id = t.workspace_id and x.member_key = c.member_key
                                                             and x.in_progress)
                        then 'in_another_campaign'
                    else 'add' end as outcome
                from checked c cross join target t
                where c.rejection is null
            ), added as (
                insert into contacts (campaign_id, workspace_id, member_key, profile_url, first_name, last_name, company, title,
                                      custom_fields, open_profile, opted_out, connection_degree, added_at, last_event_at)
                select \(campaign), workspace_id, member_key, profile_url, first_name, last_name, company, title, custom_fields,
                       coalesce(open_profile in \(yes), false), coalesce(opted_out in \(yes), false), left(degree, 1)::smallint,
                       now, now
                from classified where outcome = 'add'
                order by record
            )
            select outcome, count(*) as n, null::integer as record, null::text as reason from classified group by 1
            union all
            select 'rejected', 1, record, rejection from checked where rejection is not null
            union all
            select 'no_campaign', 1, null, null where not exists (select 1 from target)
            """)
    }
}
