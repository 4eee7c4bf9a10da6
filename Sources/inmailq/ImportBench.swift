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
              bench=import rows=... seconds=... rows_per_s=... added=... duplicates=... rejected=...
            The time covers everything `inmailq contacts import` does: COPY into staging, member keys, \
            the checks in SQL, and the insert.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(help: "Data rows in the generated file.")
    var rows: Int = 100_000

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    func validate() throws {
        guard rows > 0 else { throw ValidationError("--rows must be positive") }
    }

    func run() throws {
        let bench = try BenchDatabase(options: options)
        defer { if !keep { bench.drop() } }
        let connection = try Connection(bench.configuration)
        let workspace = try bench.workspace(on: connection)
        let campaign = try Campaigns.create(workspace: workspace, name: "Import", on: connection)
        progress("generating a CSV of \(rows) rows")
        var csv = "Profile URL,First Name,Last Name,Company,Title,Open Profile,Industry,Notes\r\n"
        csv.reserveCapacity(rows * 120)
        for n in 1...rows {
            let url = n % 200 == 0 ? "not a profile \(n)" : "https://www.linkedin.com/in/member-\(n % 100 == 0 ? n - 1 : n)/"
            csv += "\(url),First\(n),Last\(n),\"Company \(n % 977), Inc\",Head of \(n % 13),\(n % 3 == 0 ? "yes" : "no"),"
                + "Industry \(n % 40),\"note with \"\"quotes\"\" and, commas\"\r\n"
        }
        progress("importing")
        let start = ContinuousClock.now
        let report = try ContactImport(campaign: campaign).run(Data(csv.utf8), on: connection)
        let seconds = (ContinuousClock.now - start).seconds
        let results: [(String, String)] = [
            ("bench", "import"), ("rows", "\(rows)"), ("seconds", format(seconds, digits: 2)),
            ("rows_per_s", format(Double(rows) / seconds)), ("added", "\(report.added)"),
            ("duplicates", "\(report.duplicatesInInput)"), ("rejected", "\(report.rejected.count)"),
        ]
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }
}
