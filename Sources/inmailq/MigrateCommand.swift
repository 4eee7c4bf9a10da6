import ArgumentParser
import Foundation
import Postgres

/// `inmailq migrate`: brings the database's schema up to date with the shipped `sql/`.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Bring the database schema up to date: apply new migrations and changed definitions.",
        discussion: """
            The SQL is kept by owner (sql/queue, sql/accounts, sql/outreach; see sql/README.md). \
            Each owner's versioned files (NNNN_name.sql) run once, in order, each in its own \
            transaction, recorded with a checksum in schema_migrations; then its repeatable files \
            (R__name.sql, the current functions and views) run again whenever they changed. \
            Several processes may run this at once. A versioned file changed after it was applied \
            stops the run with an error, and so does a database made by a build from before the \
            schema was organised by owner.
            """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Also install the sandbox courier's tables (the simulated LinkedIn of demos, tests and benchmarks).")
    var sandbox = false

    @Option(help: ArgumentHelp("Apply the files of this one directory instead (an owner named after it), e.g. to try a migration.", valueName: "dir"))
    var migrations: String?

    @Flag(help: "Only list what would be applied.")
    var status = false

    func run() throws {
        let logger = options.makeLogger("migrate")
        let migrator = try migrations.map { directory in
            Migrator(owners: [try SchemaOwner.load(URL(fileURLWithPath: directory).lastPathComponent, from: directory)])
        } ?? SQLFiles.shippedMigrator(sandbox: sandbox)
        guard options.poolMode == .session else {
            throw ValidationError("migrate holds a session lock while it applies: give it the server's own URL, not a transaction pooler's")
        }
        let connection = try Connection(try options.connectionConfiguration(applicationName: "inmailq-migrate"))
        if status {
            let pending = try migrator.pending(connection)
            for file in pending.versioned + pending.repeatable { print("pending \(file)") }
            for file in try migrator.appliedFiles(connection) { print("applied \(file.owner)/\(file.name)") }
            return
        }
        let done = try migrator.migrate(connection) { logger.info("\($0)") }
        logger.info("schema is current", metadata: ["applied_now": "\(done.count)"])
    }
}
