import EmbeddedPostgres
import Foundation
import Postgres

/// A real PgBouncer (Debian's `pgbouncer`) in transaction pooling mode in front of the test
/// server, on a free port of 127.0.0.1, its files in a temp directory; stopped when released.
/// As root it runs as the server's user (it refuses root, as `initdb` does).
final class PgBouncerProcess {
    static let binary = "/usr/sbin/pgbouncer"
    let port: Int
    let directory: String
    /// Server sessions per database and user; clients beyond it wait for a transaction to end.
    let poolSize: Int
    private let child: ChildProcess

    /// `logins` may connect (trusted, as the test server's socket trusts them).
    init(logins: [String], poolSize: Int = 10) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw DoubleProcessError(message: "\(Self.binary) is missing: `make test` installs the pgbouncer package")
        }
        let server = try TestServer.admin.get()
        let settings = Dictionary(try ConnectionConfiguration.parse(server.conninfo), uniquingKeysWith: { $1 })
        let (socket, serverPort) = (settings["host"] ?? "/tmp", settings["port"] ?? "5432")
        self.poolSize = poolSize
        directory = TestScratch.directory + "/pgbouncer-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        port = try LocalCluster.freeLoopbackPort()
        try logins.map { "\"\($0)\" \"\"" }.joined(separator: "\n").write(toFile: directory + "/users.txt", atomically: true, encoding: .utf8)
        try """
            [databases]
            * = host=\(socket) port=\(serverPort)
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(directory)/users.txt
            pool_mode = transaction
            default_pool_size = \(poolSize)
            max_client_conn = 1000
            server_reset_query =
            logfile = \(directory)/pgbouncer.log
            pidfile = \(directory)/pgbouncer.pid

            """.write(toFile: directory + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        var command = [Self.binary, directory + "/pgbouncer.ini"]
        if geteuid() == 0 {
            command = ["/usr/sbin/runuser", "-u", ProcessInfo.processInfo.environment["INMAILQ_PG_USER"] ?? "postgres", "--"] + command
        }
        child = try ChildProcess.spawn(command, outputPath: directory + "/stdout.log")
        let up = eventually(timeout: .seconds(10), every: 0.05) {
            (try? Connection(ConnectionConfiguration("host=127.0.0.1 port=\(self.port) dbname=postgres user=\(logins[0]) connect_timeout=2"))) != nil
        }
        guard up else {
            stop()
            throw DoubleProcessError(message: "pgbouncer did not start: \(log)")
        }
    }

    deinit { stop() }

    var log: String {
        ((try? String(contentsOfFile: directory + "/pgbouncer.log", encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: directory + "/stdout.log", encoding: .utf8)) ?? "")
    }

    /// `db` through this pooler, as `login`.
    func url(_ db: TestDatabase, as login: String) -> String {
        "host=127.0.0.1 port=\(port) dbname=\(db.name) user=\(login)"
    }

    func stop() {
        guard child.exitStatusIfEnded() == nil else { return }
        // SIGTERM is pgbouncer's immediate shutdown; sent to pgbouncer itself (its pidfile), as
        // runuser, its parent when the tests run as root, does not always pass signals on.
        if let text = try? String(contentsOfFile: directory + "/pgbouncer.pid", encoding: .utf8),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGTERM)
        }
        child.signal(SIGTERM)
        _ = child.wait()
    }
}
