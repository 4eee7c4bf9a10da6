import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq renewals schedule`: run daily by cron (deploy/crontab).
struct RenewalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renewals",
        abstract: "Monthly InMail credit renewals.",
        subcommands: [Schedule.self]
    )

    struct Schedule: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue the renewals that are due, including days a missed cron skipped.",
            discussion: """
                One job per sender account and billing cycle; workers run them. Running it twice \
                enqueues nothing more, and a cycle is granted once however often its job runs.
                """
        )

        @OptionGroup var options: GlobalOptions

        @Option(help: ArgumentHelp("Renew cycles due on or before this business date (default: today, UTC).", valueName: "YYYY-MM-DD"))
        var date: String?

        func validate() throws {
            guard let date else { return }
            guard let match = date.wholeMatch(of: /(\d{4})-(\d{2})-(\d{2})/),
                  let year = Int(match.1), let month = Int(match.2), let day = Int(match.3),
                  DateComponents(calendar: Calendar(identifier: .gregorian), year: year, month: month, day: day).isValidDate
            else {
                throw ValidationError("--date \(date.prefix(40)) is not a date: use YYYY-MM-DD, e.g. 2026-11-30")
            }
        }

        func run() throws {
            let logger = options.makeLogger("renewals")
            let enqueued = try Renewals.schedule(on: date, connection: options.connect(applicationName: "inmailq-renewals"))
            logger.info("renewals scheduled", metadata: ["enqueued": "\(enqueued)", "date": "\(date ?? "today")"])
            print("enqueued \(enqueued) renewal job(s)")
        }
    }
}
