import Foundation
import Testing

/// Bad numbers and names on the command line get one clear line and a usage error, never a crash
/// (issue 13: `--lease inf` and the like ended in a backtrace).
@Suite("Command-line input")
struct CommandLineInputTests {
    @Test func outOfRangeNumbersAreRefusedWithTheOptionAndItsRange() throws {
        let cases: [([String], String)] = [
            (["worker", "--lease", "inf"], "--lease (seconds) must be between"),
            (["worker", "--retention-days", "1e300"], "--retention-days must be between"),
            (["worker", "--poll-interval", "nan"], "--poll-interval (seconds) must be between"),
            (["enqueue", "diag.noop", "--delay", "1e300"], "--delay must be between"),
            (["enqueue", "diag.noop", "--delay", "inf"], "--delay must be between"),
            (["enqueue", "diag.noop", "--count", "1000000000"], "--count must be between 1 and 100000"),
            (["clock", "advance", "infd"], "cannot read \"infd\" as a duration"),
            (["clock", "advance", "1e300d"], "cannot read \"1e300d\" as a duration"),
            (["clock", "advance", "-1d"], "the clock only moves forward; \"-1d\" would move it back"),
            (["renewals", "schedule", "--date", "2026-13-45"], "--date 2026-13-45 is not a date"),
            (["enqueue", "no.such.kind"], "no worker of this build runs jobs of kind \"no.such.kind\""),
            (["contacts", "list", "--campaign", "1", "--status", "bogus"], "unknown status \"bogus\""),
        ]
        for (arguments, expected) in cases {
            let run = try InmailqProcess.run(arguments + ["--database-url", "host=/nonexistent"])
            #expect(run.status == 64, "\(arguments): exit \(run.status): \(run.output.prefix(500))")  // a usage error, not a crash
            #expect(run.output.contains(expected), "\(arguments): \(run.output.prefix(500))")
        }
    }

    @Test func aHugeArgumentIsNotEchoedBack() throws {
        let huge = String(repeating: "x", count: 120_000)
        let run = try InmailqProcess.run(["enqueue", "diag.noop", "--args", huge, "--database-url", "host=/nonexistent"])
        #expect(run.status == 64)
        #expect(run.output.count < 2_000, "printed \(run.output.count) characters")
    }
}

@Suite("Log lines")
struct LogLineTests {
    @Test func aServerErrorWithAMultiLineContextIsLoggedAsOneLine() throws {
        let db = try TestDatabase()
        // No such account: the error comes back with a PL/pgSQL context of several lines.
        let enqueued = try InmailqProcess.run([
            "enqueue", "credits.renew", "--args", #"{"account_id": 999999, "cycle_start": "2026-01-01"}"#, "--max-attempts", "1",
            "--database-url", db.url, "--log-level", "warning",
        ])
        #expect(enqueued.status == 0, "\(enqueued.output)")
        let worker = try InmailqProcess.run(["worker", "--database-url", db.url, "--exit-when-done", "--kinds", "credits.renew", "--log-level", "info"])
        #expect(worker.status == 0, "\(worker.output)")
        let lines = worker.output.split(separator: "\n")
        #expect(lines.contains { $0.contains("job discarded after its last attempt") && $0.contains("no sender account with id 999999") })
        #expect(lines.contains { $0.contains("\\n") }, "the multi-line context should appear escaped: \(worker.output)")
        #expect(lines.allSatisfy { $0.wholeMatch(of: /\d{4}-\d\d-\d\dT.*/) != nil }, "a line that is not an event: \(worker.output)")
    }
}

@Suite("Errors a person reads")
struct DatabaseErrorMessageTests {
    @Test func aDatabaseRefusalShowsItsMessageAndTheInternalsOnlyAtDebugLevel() throws {
        let db = try TestDatabase()
        let plain = try InmailqProcess.run(["campaigns", "activate", "999999", "--database-url", db.url])
        #expect(plain.status == 1)
        #expect(plain.output.contains("Error: no campaign with id 999999"), "\(plain.output)")
        #expect(!plain.output.contains("SQLSTATE") && !plain.output.contains("PL/pgSQL"), "\(plain.output)")
        let debug = try InmailqProcess.run(["campaigns", "activate", "999999", "--database-url", db.url, "--log-level", "debug"])
        #expect(debug.output.contains("SQLSTATE P0002") && debug.output.contains("PL/pgSQL"), "\(debug.output)")
    }
}

@Suite("Business clock")
struct ClockCommandTests {
    @Test func theClockMovesToAGivenTimeAndNeverBack() throws {
        let db = try TestDatabase()
        let moved = try InmailqProcess.run(["clock", "advance", "--to", "2099-03-01T09:00:00Z", "--database-url", db.url])
        #expect(moved.status == 0, "\(moved.output)")
        #expect(moved.output.contains("2099-03-01T09:00:0"), "\(moved.output)")
        let back = try InmailqProcess.run(["clock", "advance", "--to", "2099-01-01T00:00:00Z", "--database-url", db.url])
        #expect(back.status == 1 && back.output.contains("the clock only moves forward"), "\(back.output)")
        let both = try InmailqProcess.run(["clock", "advance", "1d", "--to", "2099-01-01T00:00:00Z", "--database-url", db.url])
        #expect(both.status == 64 && both.output.contains("give either a duration"))
    }
}
