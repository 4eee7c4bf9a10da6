import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq bench import`: a CSV import of N rows into a fresh campaign.
struct ImportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a generated CSV of N contacts (1 in 200 a duplicate, 1 in 200 invalid) and time it.",
        discussion: """
            Runs on a fresh database (inmailq_bench_<pid>), dropped afterwards. The result is one line:
              bench=import rows=... seconds=... rows_per_s=... added=... duplicates=... rejected=... copy_floor_seconds=... runs=...
            seconds is the median of --runs imports, each into a new workspace; it covers everything \
            `inmailq contacts import` does: COPY into staging, member keys, the checks in SQL, and the insert. \
            copy_floor_seconds is the median time of a raw COPY of the same file into a table without \
            indexes, the floor no import can beat; runs lists every import's seconds.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(help: "Data rows in the generated file.")
    var rows: Int = 100_000

    @Option(help: "Imports to run, each into a new workspace; the median is reported.")
    var runs: Int = 3

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    func validate() throws {
        guard rows > 0 else { throw ValidationError("--rows must be positive") }
        guard runs > 0 else { throw ValidationError("--runs must be positive") }
    }

    func run() throws {
        let bench = try BenchDatabase(options: options)
        defer { if !keep { bench.drop() } }
        let connection = try Connection(bench.configuration)
        progress("generating a CSV of \(rows) rows")
        var csv = "Profile URL,First Name,Last Name,Company,Title,Open Profile,Industry,Notes\r\n"
        csv.reserveCapacity(rows * 120)
        for n in 1...rows {
            let url = n % 200 == 0 ? "not a profile \(n)" : "https://www.linkedin.com/in/member-\(n % 100 == 0 ? n - 1 : n)/"
            csv += "\(url),First\(n),Last\(n),\"Company \(n % 977), Inc\",Head of \(n % 13),\(n % 3 == 0 ? "yes" : "no"),"
                + "Industry \(n % 40),\"note with \"\"quotes\"\" and, commas\"\r\n"
        }
        let file = Data(csv.utf8)
        let agency = try connection.queryOne("select admin_create_agency('Bench agency') as id").decode(Int64.self, "id")
        var seconds: [Double] = []
        var floors: [Double] = []
        var report: ContactAddReport?
        for run in 1...runs {
            progress("import \(run) of \(runs)")
            let workspace = try connection.queryOne("select admin_create_workspace(\(agency), \("Bench client \(run)")) as id")
                .decode(Int64.self, "id")
            let campaign = try Campaigns.create(workspace: workspace, name: "Import", on: connection)
            let start = ContinuousClock.now
            report = try ContactImport(campaign: campaign).run(file, on: connection)
            seconds.append((ContinuousClock.now - start).seconds)
            floors.append(try rawCopySeconds(file, on: connection))
        }
        guard let report else { return }  // --runs is at least 1
        let median = seconds.sorted()[seconds.count / 2]
        let results: [(String, String)] = [
            ("bench", "import"), ("rows", "\(rows)"), ("seconds", format(median, digits: 2)),
            ("rows_per_s", format(Double(rows) / median)), ("added", "\(report.added)"),
            ("duplicates", "\(report.duplicatesInInput)"), ("rejected", "\(report.rejected.count)"),
            ("copy_floor_seconds", format(floors.sorted()[floors.count / 2], digits: 2)),
            ("runs", seconds.map { format($0, digits: 2) }.joined(separator: ",")),
        ]
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// The time of a plain COPY of `file` into a new table of text columns without indexes.
    func rawCopySeconds(_ file: Data, on connection: Connection) throws -> Double {
        try connection.execute("drop table if exists import_floor")
        try connection.execute("create table import_floor (c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text)")
        let start = ContinuousClock.now
        try connection.transaction { connection in
            try connection.copyIn("copy import_floor from stdin with (format csv, header true)") { writer in
                try writer.write(file)
            }
        }
        return (ContinuousClock.now - start).seconds
    }
}
