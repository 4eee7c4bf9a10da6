import ArgumentParser
import EmbeddedPostgres
import Foundation
import Postgres

/// `inmailq db ...`: the private local cluster.
struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Create, start, stop and locate the private local PostgreSQL cluster.",
        discussion: """
            The cluster lives under INMAILQ_HOME (default ./.inmailq). It listens on a Unix socket \
            in that directory and on 127.0.0.1; when run as root, the server runs as the postgres user.
            """,
        subcommands: [Start.self, Stop.self, Status.self, URLCommand.self]
    )

    static var cluster: LocalCluster { LocalCluster(home: LocalCluster.defaultHome()) }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the cluster if needed and start it (already running is fine).")

        func run() throws {
            let cluster = DatabaseCommand.cluster
            let url = try cluster.start()
            print("running: \(cluster.status())")
            print(url)
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the cluster (already stopped is fine).")

        func run() throws {
            let cluster = DatabaseCommand.cluster
            try cluster.stop()
            print("stopped: \(cluster.home)")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print whether the cluster exists and runs; exit 3 when it is not running.")

        func run() throws {
            let cluster = DatabaseCommand.cluster
            let status = cluster.status()
            print("cluster: \(cluster.home)")
            print("status: \(status)")
            guard case .running = status else { throw ExitCode(3) }
            print("url: \(try cluster.url())")
        }
    }

    struct URLCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "url", abstract: "Print the cluster's connection URL (for psql, DATABASE_URL).")

        func run() throws {
            print(try DatabaseCommand.cluster.url())
        }
    }
}
