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

    /// Opens a connection to the configured database.
    func connect(applicationName: String = "inmailq") throws -> Connection {
        try Connection(connectionConfiguration(applicationName: applicationName))
    }
}

enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}
