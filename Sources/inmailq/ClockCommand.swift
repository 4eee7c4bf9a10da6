import ArgumentParser
import Foundation
import Postgres
import Queue

/// `inmailq clock`: the business clock every worker reads.
struct ClockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clock",
        abstract: "Show or move forward the business clock (limits, windows, schedules).",
        discussion: "Real time by default. Moving it forward makes simulated days pass in seconds for every worker at once; it never moves back.",
        subcommands: [Show.self, Advance.self],
        defaultSubcommand: Show.self
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print business time (UTC).")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            let now = try QueueClock.now(on: options.connect())
            print(now.formatted(.iso8601))
        }
    }

    struct Advance: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move business time forward, e.g. `90m`, `12h`, `3d`.")
        @OptionGroup var options: GlobalOptions

        /// Every word the parser does not know lands here, so `-1d` is read as a (refused)
        /// duration instead of as an unknown flag.
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("How far: a number with s, m, h or d (or give --to).", valueName: "by"))
        var words: [String] = []

        var by: String? { words.first }

        @Option(help: ArgumentHelp("Move to this business time instead, e.g. 2027-03-01T09:00:00Z.", valueName: "time"))
        var to: String?

        func validate() throws {
            guard words.count <= 1 else { throw ValidationError("give one duration, not \(words.count) (\(words.prefix(3).joined(separator: " ")))") }
            if let by, by.hasPrefix("-") {
                throw ValidationError("the clock only moves forward; \"\(by.prefix(40))\" would move it back")
            }
            guard (by == nil) != (to == nil) else { throw ValidationError("give either a duration (e.g. 36h) or --to TIME") }
            if let by, Self.parse(by) == nil {
                throw ValidationError("cannot read \"\(by)\" as a duration: use a number (up to a century) with s, m, h or d, e.g. 36h")
            }
            if let to, (try? Date(to, strategy: .iso8601)) == nil {
                throw ValidationError("cannot read \"\(to.prefix(60))\" as a time: use ISO 8601 with a zone, e.g. 2027-03-01T09:00:00Z")
            }
        }

        func run() throws {
            let connection = try options.connect()
            var seconds = by.flatMap(Self.parse) ?? 0
            if let to, let target = try? Date(to, strategy: .iso8601) {
                let now = try QueueClock.now(on: connection)
                guard target >= now else {
                    throw CommandFailure("the clock only moves forward: it is \(now.formatted(.iso8601)) already")
                }
                seconds = target.timeIntervalSince(now)
            }
            let now = try QueueClock.advance(by: .seconds(seconds), on: connection)
            print(now.formatted(.iso8601))
        }

        static func parse(_ text: String) -> Double? {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
            guard let unit = text.last, let factor = units[unit], let value = Double(text.dropLast()), value.isFinite, value >= 0
            else { return nil }
            let seconds = value * factor
            return seconds <= 100 * 365 * 86_400 ? seconds : nil  // a century at most
        }
    }
}
