import ArgumentParser

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
}
