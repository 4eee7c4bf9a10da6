import ArgumentParser
import Foundation
import Logging
import Postgres

/// Options every command that talks to the database takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("PostgreSQL URL or conninfo (default: DATABASE_URL, PG* variables, or the local cluster).", valueName: "url"))
    var databaseURL: String?

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
        if let databaseURL {
            return ConnectionConfiguration(databaseURL, applicationName: applicationName)
        }
        if let configured = ConnectionConfiguration.fromEnvironment(applicationName: applicationName) {
            return configured
        }
        let cluster = LocalCluster(home: LocalCluster.defaultHome())
        let url = try cluster.start()
        return ConnectionConfiguration(url, applicationName: applicationName)
    }

    /// Opens a connection to the configured database and makes sure its schema is current: the
    /// local cluster is migrated on first use; any other database must be migrated by
    /// `inmailq migrate`, and a clear error says so.
    func connect(applicationName: String = "inmailq") throws -> Connection {
        let configuration = try connectionConfiguration(applicationName: applicationName)
        let connection = try Connection(configuration)
        let migrator = try SQLFiles.shippedMigrator()
        let applied = Set(try migrator.appliedMigrations(connection).map(\.version))
        let pending = migrator.migrations.filter { !applied.contains($0.version) }
        guard !pending.isEmpty else { return connection }
        if usesLocalCluster {
            try migrator.migrate(connection)
            return connection
        }
        throw CommandFailure(
            "the database schema is not current (pending: \(pending.map(\.name).joined(separator: ", "))); run `inmailq migrate` first")
    }

    /// True when no database is configured, so the private local cluster is used.
    var usesLocalCluster: Bool {
        databaseURL == nil && ConnectionConfiguration.fromEnvironment() == nil
    }
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
