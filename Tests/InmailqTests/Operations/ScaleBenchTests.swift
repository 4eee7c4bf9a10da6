import Foundation
import Postgres
import Testing

/// `inmailq bench scale`, run small: the agency it builds passes every constraint of the schema
/// and every measurement runs on it. (Its figures are the benchmark's business, not a test's.)
@Suite("Scale benchmark")
struct ScaleBenchTests {
    /// The key=value pairs of a benchmark's result line.
    func figures(_ output: String) -> [String: String] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("bench=scale ") }) else { return [:] }
        return Dictionary(line.split(separator: " ").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { $1 })
    }

    /// Runs `inmailq` to the end: its exit status, what it printed, and the name of the benchmark
    /// database it made (after its process id; other tests' benchmarks run beside it).
    func runBench(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, database: String) {
        let process = try InmailqProcess.start(arguments, environment: environment)
        let status = process.child.wait()
        return (status, process.output, "inmailq_bench_\(process.child.pid)")
    }

    func databaseExists(_ name: String, _ db: TestDatabase) throws -> Bool {
        try db.connect().query("select 1 from pg_database where datname = \(name)").rowCount == 1
    }

    /// A month of 1,000 accounts is built consistent by construction: the foreign keys it loads
    /// without are validated afterwards, the daily usage it writes stays under S6's check
    /// constraints, every account's ledger matches its grants; a thirtieth of the accounts
    /// renews on the billing day (A3) and each renewal job renews its cycle once.
    @Test func buildsAConsistentMonthAndMeasuresItWhole() throws {
        let db = try TestDatabase()
        let run = try runBench(
            ["bench", "scale", "--database-url", db.url, "--accounts", "1000", "--contacts", "20000", "--messages", "40000",
             "--parked", "2000", "--pipeline-contacts", "200", "--pipeline-accounts", "5", "--concurrency", "8"])
        #expect(run.status == 0, "\(run.output)")
        let result = figures(run.output)
        #expect(result["messages"] == "40000")
        #expect(result["parked_jobs"] == "2000")
        #expect(result["renewals"] == "34")  // billing days 1-30 in turn: accounts 0, 30, ... 990 renew on the 1st
        for key in ["claim_p50_ms_small", "claim_p50_ms", "pipeline_jobs_per_s_small", "pipeline_jobs_per_s", "renewals_drain_s",
                    "report_campaign_ms", "report_account_ms", "report_agency_ms", "contacts_first_row_ms", "messages_mb"] {
            #expect(Double(result[key] ?? "") ?? -1 > 0, "\(key) in \(result)")
        }
        // The benchmark's database is gone afterwards.
        #expect(try !databaseExists(run.database, db))
    }

    /// A kept database is measured again with --reuse (and kept again); a name that is not a
    /// kept benchmark database is refused, naming it.
    @Test func aKeptDatabaseIsMeasuredAgainWithoutBuildingItAgain() throws {
        let db = try TestDatabase()
        let first = try runBench(
            ["bench", "scale", "--database-url", db.url, "--accounts", "1000", "--contacts", "4000", "--messages", "4000",
             "--parked", "1000", "--pipeline-contacts", "100", "--pipeline-accounts", "5", "--concurrency", "8", "--keep"])
        let name = first.database
        let admin = try db.connect()
        defer { _ = try? admin.runScript("drop database if exists \(quoteIdentifier(name)) with (force)") }
        #expect(first.status == 0, "\(first.output)")
        #expect(try databaseExists(name, db))
        let again = try InmailqProcess.run(
            ["bench", "scale", "--database-url", db.url, "--reuse", name, "--pipeline-contacts", "100", "--pipeline-accounts", "5",
             "--concurrency", "8"])
        #expect(again.status == 0, "\(again.output)")
        let result = figures(again.output)
        #expect(result["database"] == name)
        #expect(result["build_s"] == nil && result["renewals"] == nil)
        for key in ["claim_p50_ms", "pipeline_jobs_per_s", "report_agency_ms", "contacts_first_row_ms"] {
            #expect(Double(result[key] ?? "") ?? -1 > 0, "\(key) in \(result)")
        }
        #expect(try databaseExists(name, db))
        let unknown = try InmailqProcess.run(["bench", "scale", "--database-url", db.url, "--reuse", "inmailq_bench_0"])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("no database named inmailq_bench_0"), "\(unknown.output)")
    }

    /// A benchmark that cannot set its database up (here: a migration that fails) says why and
    /// leaves no database behind.
    @Test func aBenchmarkThatCannotPrepareLeavesNoDatabaseBehind() throws {
        let db = try TestDatabase()
        let sql = FileManager.default.temporaryDirectory.appendingPathComponent("broken-sql-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: TestPaths.root + "/sql", toPath: sql)
        defer { try? FileManager.default.removeItem(atPath: sql) }
        try "select no_such_function();\n".write(toFile: sql + "/queue/9999_broken.sql", atomically: true, encoding: .utf8)
        let run = try runBench(
            ["bench", "pipeline", "--database-url", db.url, "--contacts", "10", "--accounts", "1"], environment: ["INMAILQ_SQL_DIR": sql])
        #expect(run.status != 0)
        #expect(run.output.contains("9999_broken.sql") && run.output.contains("no_such_function"), "\(run.output)")
        #expect(try !databaseExists(run.database, db))
    }

    @Test func refusesAnAgencyItCannotBuildNamingTheOption() throws {
        let db = try TestDatabase()
        let uneven = try InmailqProcess.run(["bench", "scale", "--database-url", db.url, "--accounts", "1500"])
        #expect(uneven.status != 0)
        #expect(uneven.output.contains("--accounts must be 1 to 1,000 or a multiple of 1,000 (got 1500)"), "\(uneven.output)")
        let crowded = try InmailqProcess.run(
            ["bench", "scale", "--database-url", db.url, "--accounts", "1000", "--contacts", "10000", "--messages", "80000"])
        #expect(crowded.status != 0)
        #expect(crowded.output.contains("each account has 10 contacts: too few for 20 sent to"), "\(crowded.output)")
    }
}
