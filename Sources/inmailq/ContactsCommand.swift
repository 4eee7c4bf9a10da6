import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq contacts ...`: add contacts three ways (C2) and see where each stands.
struct ContactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contacts", abstract: "Add contacts to campaigns (C2) and list where each stands.",
        subcommands: [Add.self, Import.self, Search.self, List.self, DoNotContact.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add members by LinkedIn profile or Sales Navigator lead links (C2).",
            discussion: """
                Links come as arguments or from --profiles FILE (- for standard input), separated by \
                commas or newlines. Accepted: with or without https:// or www, country subdomains, \
                trailing slashes, query strings, percent-encoded and non-ASCII names, mobile links, \
                Sales Navigator lead links. Invalid links are reported with their line number; \
                duplicates, members already in the campaign or on the workspace's do-not-contact \
                list, and members in another active campaign of the workspace are counted, not added.

                \(ContactResultOutput.exitCodes)
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @OptionGroup var input: ProfileLinksInput
        @OptionGroup var output: ContactResultOutput

        func run() throws {
            let report = try Contacts.add(campaign: campaign, links: input.links(), on: options.connect())
            try output.emit(report, text: report.description, rejected: report.rejected.count)
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import contacts from a CSV file with a header row (C2).",
            discussion: """
                Known columns are recognised whatever their case and punctuation: profile URL \
                (profile_url, LinkedIn URL, URL, ...), first name, last name, company, title, open \
                profile, opted out, connection degree. --map COLUMN=FIELD overrides (FIELD is one of \
                those, custom:NAME, or ignore). Every other column is kept as a custom field that \
                templates can use ({{column_name}}).

                PostgreSQL reads the file (COPY, CSV: quotes, embedded commas and newlines, CRLF; a \
                UTF-8 byte-order mark is removed). Each row is checked on its own: a bad row is \
                reported with its line number and reason and never stops the good ones. Importing \
                the same file again adds nothing new.

                \(ContactResultOutput.exitCodes)
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @Option(help: ArgumentHelp("The CSV file, or - for standard input.", valueName: "file")) var csv: String
        @Option(help: ArgumentHelp("Which field a column fills.", valueName: "COLUMN=FIELD")) var map: [String] = []
        @Option(help: ArgumentHelp("Write the rejected rows here (CSV, with a reason column).", valueName: "file")) var rejected: String?
        @Option(help: ArgumentHelp("The field delimiter (default: the one of , ; or tab the header uses).", valueName: "char"))
        var delimiter: String?
        @OptionGroup var output: ContactResultOutput

        func validate() throws {
            if let delimiter, delimiter.count != 1 && delimiter != "\\t" {
                throw ValidationError("--delimiter must be one character (or \\t for a tab)")
            }
        }

        func run() throws {
            var importer = ContactImport(campaign: campaign)
            importer.delimiter = delimiter.map { $0 == "\\t" ? "\t" : Character($0) }
            for item in map {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--map \(item): expected COLUMN=FIELD") }
                importer.mapping[parts[0]] = parts[1]
            }
            if isatty(STDERR_FILENO) == 1 {
                importer.progress = { done, total in
                    FileHandle.standardError.write(Data("\rloading rows: \(done) of \(total)\(done == total ? "\n" : "")".utf8))
                }
            }
            let data: Data
            if csv == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let contents = FileManager.default.contents(atPath: csv) else { throw CommandFailure("cannot read --csv \(csv)") }
                data = contents
            }
            let report: ContactAddReport
            do {
                report = try importer.run(data, on: options.connect()) { rows in
                    if let rejected { try rows.write(to: URL(fileURLWithPath: rejected)) }
                }
            } catch let failure as ContactImport.Failure {
                throw CommandFailure("\(csv): \(failure)")
            }
            var text = report.description
            if let rejected, !report.rejected.isEmpty { text += "\nrejected rows written to \(rejected)" }
            try output.emit(report, text: text, rejected: report.rejected.count)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The People view: each contact of a campaign, its sender, status, reason and last event.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @Option(help: "Only this status (waiting, sent, accepted, declined, replied, finished, skipped, failed).") var status: String?
        @Flag(help: "Print one JSON document: an array of the contacts.") var json = false
        @Flag(help: "Print one JSON object a line (JSON Lines), for streaming into other tools.") var jsonl = false

        func validate() throws {
            if let status, ContactStatus(rawValue: status) == nil {
                throw ValidationError("unknown status \"\(status)\"; use one of \(ContactStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if json && jsonl { throw ValidationError("give --json or --jsonl, not both") }
        }

        func run() throws {
            let connection = try options.connect()
            try connection.execute("select require_campaign(\(campaign))")
            let query: SQL = """
                select contact_id, member_key, coalesce(first_name || ' ' || last_name, first_name, last_name) as name,
                       sender_account_id, status, reason, last_event, last_event_at,
                       to_jsonb(p) - 'workspace_id' as object
                from contact_progress p
                where campaign_id = \(campaign) and (\(status)::contact_status is null or status = \(status)::contact_status)
                order by contact_id
                """
            // Printed as the rows arrive, a batch at a time: a campaign of any size starts at once
            // and never sits whole in memory.
            func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }
            var first = true
            if json {
                write("[")
            } else if !jsonl {
                write(["contact", "member", "name", "sender", "status", "reason", "last event"].joined(separator: "\t") + "\n")
            }
            try connection.forEachBatch(of: query) { batch in
                var text = ""
                for row in batch.rows {
                    if json || jsonl {
                        text += (first ? "" : json ? ",\n" : "\n") + (try row.decode(String.self, "object"))
                    } else {
                        let fields = [
                            String(try row.decode(Int64.self, "contact_id")), try row.decode(String.self, "member_key"),
                            try row.decode(String?.self, "name") ?? "", try row.decode(Int64?.self, "sender_account_id").map(String.init) ?? "-",
                            try row.decode(String.self, "status"), try row.decode(String?.self, "reason") ?? "",
                            try row.decode(String?.self, "last_event") ?? "",
                        ]
                        text += fields.joined(separator: "\t") + "\n"
                    }
                    first = false
                }
                write(text)
            }
            if json {
                write("]\n")
            } else if jsonl && !first {
                write("\n")
            }
        }
    }
}

/// How `contacts add`, `import` and `do-not-contact` print their result and what they exit with.
struct ContactResultOutput: ParsableArguments {
    static let exitCodes = """
        Exit status: 0 when every input was taken (added, or counted as a duplicate, already \
        there or excluded); 2 when some rows or links were rejected (the others are stored, the \
        rejected ones are listed with their reasons); 1 on an error, when nothing was stored.
        """

    @Flag(help: "Print the result as one JSON object (counts and rejected inputs with line and reason).") var json = false

    /// Prints `value` as JSON with `--json`, else `text`; then exits with 2 when inputs were rejected.
    func emit(_ value: some Encodable, text: String, rejected: Int) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            print(text)
        }
        if rejected > 0 { throw ExitCode(2) }
    }
}

/// Profile links given as arguments and/or in a file (`--profiles FILE`, `-` for standard input).
struct ProfileLinksInput: ParsableArguments {
    @Option(help: ArgumentHelp("A file of profile links, or - for standard input.", valueName: "file")) var profiles: String?
    @Argument(help: "Profile links.") var arguments: [String] = []

    func validate() throws {
        guard profiles != nil || !arguments.isEmpty else { throw ValidationError("give profile links, or --profiles FILE") }
    }

    /// The links with their line numbers: the file's lines first, then the arguments.
    func links() throws -> [(line: Int, text: String)] {
        var text = arguments.joined(separator: "\n")
        if let profiles {
            let data: Data
            if profiles == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let contents = FileManager.default.contents(atPath: profiles) else { throw CommandFailure("cannot read --profiles \(profiles)") }
                data = contents
            }
            text = String(decoding: data, as: UTF8.self) + (text.isEmpty ? "" : "\n" + text)
        }
        return Contacts.links(inPastedText: text)
    }
}

extension ContactsCommand {
    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add the people of a LinkedIn or Sales Navigator search URL (C2), page by page, by a job.",
            discussion: """
                The URL must be a LinkedIn people search (linkedin.com/search/results/people/...) or a \
                Sales Navigator search (linkedin.com/sales/search/people...). A worker pages through the \
                results through the courier, adding contacts as pages arrive; the next page's cursor is \
                stored with each page, so a search whose worker died resumes where it stopped. \
                Progress: select * from contact_searches.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @Option(help: "The search URL.") var url: String
        @Option(help: "The most people to add.") var max: Int = 1_000

        func validate() throws {
            try requireInRange(max, 1...10_000, "--max")
        }

        func run() throws {
            let search: SearchURL
            do {
                search = try SearchURL(url)
            } catch {
                throw CommandFailure("--url \(error)")
            }
            let id = try Searches.start(campaign: campaign, url: search, max: max, on: options.connect())
            print("search \(id) queued: a worker adds up to \(max) people from this \(search.kind == .salesNavigator ? "Sales Navigator" : "LinkedIn") search")
        }
    }
}

extension ContactsCommand {
    struct DoNotContact: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "do-not-contact",
            abstract: "Put members on a workspace's do-not-contact list; their sequences in the workspace stop.",
            discussion: """
                Links as for `contacts add` (arguments or --profiles FILE|-). Listed members are never \
                added to a campaign of the workspace again.

                \(ContactResultOutput.exitCodes)
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The client workspace.") var workspace: Int64
        @Option(help: "Why (kept with the entry).") var reason: String?
        @OptionGroup var input: ProfileLinksInput
        @OptionGroup var output: ContactResultOutput

        struct Result: Encodable {
            let listed: Int
            let sequencesStopped: Int
            let rejected: [ContactAddReport.Rejection]
            enum CodingKeys: String, CodingKey { case listed, sequencesStopped = "sequences_stopped", rejected }
        }

        func run() throws {
            let result = try Contacts.doNotContact(workspace: workspace, links: input.links(), reason: reason, on: options.connect())
            let text = (["listed \(result.listed) (the others were listed already)", "sequences stopped \(result.stopped)",
                         "rejected \(result.rejected.count)"] + result.rejected.map { "  line \($0.line): \($0.input): \($0.reason)" })
                .joined(separator: "\n")
            try output.emit(Result(listed: result.listed, sequencesStopped: result.stopped, rejected: result.rejected),
                            text: text, rejected: result.rejected.count)
        }
    }
}
