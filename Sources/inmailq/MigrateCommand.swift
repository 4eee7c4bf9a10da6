import ArgumentParser
import Foundation
import Postgres

/// `inmailq migrate`: applies `sql/migrations`.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the SQL migrations that are not applied yet, in order.",
        discussion: """
            Each file runs in its own transaction and is recorded with its checksum in \
            schema_migrations. Several processes may run this at once. A file changed after it \
            was applied stops the run with an error.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: ArgumentHelp("Directory of NNNN_name.sql files (default: the sql/migrations shipped with inmailq).", valueName: "dir"))
    var migrations: String?

    @Flag(help: "Only list applied and pending migrations.")
    var status = false

    func run() throws {
        let logger = options.makeLogger("migrate")
        let migrator = try migrations.map { Migrator(migrations: try Migration.load(from: $0)) } ?? SQLFiles.shippedMigrator()
        let connection = try Connection(try options.connectionConfiguration(applicationName: "inmailq-migrate"))
        if status {
            let applied = Set(try migrator.appliedMigrations(connection).map(\.version))
            for migration in migrator.migrations {
                print("\(applied.contains(migration.version) ? "applied" : "pending") \(migration.name)")
            }
            return
        }
        let done = try migrator.migrate(connection) { logger.info("\($0)") }
        logger.info("schema is current", metadata: ["applied_now": "\(done.count)", "total": "\(migrator.migrations.count)"])
    }
}
