import ArgumentParser
import EmbeddedPostgres
import Foundation
import Logging
import Postgres

/// Options every command that talks to the database takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("PostgreSQL URL or conninfo (default: DATABASE_URL, PG* variables, or the local cluster).", valueName: "url"))
    var databaseURL: String?

    @Option(name: .long, help: ArgumentHelp("""
        session, or transaction when the database URL leads to PgBouncer in transaction pooling mode \
        (default: INMAILQ_POOL_MODE, else session). In transaction mode no named prepared statement \
        or SET is used, and the login's settings must be ISO dates, UTC and ISO 8601 intervals (ALTER ROLE ... SET).
        """, valueName: "mode"))
    var poolMode: PoolMode = PoolMode(rawValue: ProcessInfo.processInfo.environment["INMAILQ_POOL_MODE"] ?? "") ?? .session

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: LogLevelOption = .info

    @Option(name: .long, help: "Log format: text (key=value) or json (one object a line).")
    var logFormat: LogFormat = .text

    /// Sets up logging once; returns the logger for `label`.
    func makeLogger(_ label: String) -> Logger {
        LoggingSetup.bootstrap(level: logLevel.level, format: logFormat)
        return Logger(label: label)
    }

    /// Where to connect: the option, else the environment, else the local cluster (started if needed).
    func connectionConfiguration(applicationName: String = "inmailq") throws -> ConnectionConfiguration {
        if var configured = databaseURL.map({ ConnectionConfiguration($0, applicationName: applicationName) })
            ?? ConnectionConfiguration.fromEnvironment(applicationName: applicationName)
        {
            configured.transactionPooled = poolMode == .transaction
            return configured
        }
        let cluster = LocalCluster(home: LocalCluster.defaultHome())
        let url = try cluster.start()
        return ConnectionConfiguration(url, applicationName: applicationName)
    }

    /// Opens a connection to the configured database and makes sure its schema is current: the
    /// local cluster is migrated on first use (the sandbox courier's tables included); any other
    /// database must be migrated by `inmailq migrate` (with `--sandbox` where `sandbox` is asked
    /// for), and a clear error says so.
    func connect(applicationName: String = "inmailq", sandbox: Bool = false) throws -> Connection {
        let configuration = try connectionConfiguration(applicationName: applicationName)
        let connection = try Connection(configuration)
        let migrator = try SQLFiles.shippedMigrator(sandbox: sandbox || usesLocalCluster)
        let pending = try migrator.pending(connection)
        guard !(pending.versioned + pending.repeatable).isEmpty else { return connection }
        if usesLocalCluster {
            try migrator.migrate(connection)
            return connection
        }
        let names = (pending.versioned + pending.repeatable).map(\.description).joined(separator: ", ")
        throw CommandFailure(
            "the database schema is not current (pending: \(names)); run `inmailq migrate\(sandbox ? " --sandbox" : "")` first")
    }

    /// True when no database is configured, so the private local cluster is used.
    var usesLocalCluster: Bool {
        databaseURL == nil && ConnectionConfiguration.fromEnvironment() == nil
    }
}

/// How the database URL's sessions are pooled (`--pool-mode`).
enum PoolMode: String, ExpressibleByArgument, CaseIterable {
    /// Each connection is one server session (a direct connection, or PgBouncer's session mode).
    case session
    /// Consecutive transactions may run on different server sessions (PgBouncer's transaction mode).
    case transaction
}

enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// A problem found while a command runs (not a misuse of its arguments): printed as
/// `Error: <description>`, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
