import ArgumentParser
import Postgres

/// The `inmailq` command: one root, one file per subcommand.
@main
struct Inmailq: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inmailq",
        abstract: "A PostgreSQL-backed job queue that runs LinkedIn InMail campaigns.",
        discussion: """
            All work lives in PostgreSQL. Any number of `inmailq worker` processes, on any number of \
            hosts, share it through row locks alone.

            Database: --database-url, else DATABASE_URL, else the standard PG* variables, else a \
            private cluster under INMAILQ_HOME (default ./.inmailq), started on first use.
            """,
        subcommands: [
            DatabaseCommand.self,
            MigrateCommand.self,
            WorkerCommand.self,
            ServeCommand.self,
            ConsoleCommand.self,
            GatewayCommand.self,
            GatewayDoubleCommand.self,
            EnqueueCommand.self,
            JobsCommand.self,
            CampaignsCommand.self,
            ContactsCommand.self,
            ResponsesCommand.self,
            ReportCommand.self,
            RenewalsCommand.self,
            ClockCommand.self,
            BenchCommand.self,
        ]
    )

    /// Runs the command. A database error is shown as its message (with detail and hint); its
    /// SQLSTATE and the server's context too with `--log-level debug` or `trace`.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch let error as PostgresError {
            let arguments = CommandLine.arguments
            let verbose = zip(arguments, arguments.dropFirst()).contains { $0 == "--log-level" && ["debug", "trace"].contains($1) }
            exit(withError: CommandFailure(verbose ? error.description : error.summary))
        } catch {
            exit(withError: error)
        }
    }
}
