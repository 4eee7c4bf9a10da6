import Foundation
import Postgres

/// A private PostgreSQL cluster under one directory, created and started with the installed
/// server's `initdb` and `pg_ctl`. It listens on a Unix socket in that directory (mode 0700, so
/// only its owner and root can connect, with `trust`) and on 127.0.0.1 (password only).
///
/// When the caller is root, which `initdb` refuses, the server runs as the unprivileged
/// `postgres` user (or `INMAILQ_PG_USER`) through `runuser`; only the cluster's own
/// directories change owner. Non-root users run it as themselves, unchanged.
public struct LocalCluster: Sendable {
    /// Everything of the cluster lives here: `pgdata/`, `run/` (socket), `log/`, `port`, `password`.
    public let home: String
    /// Whether the server syncs to disk. Off only for throwaway clusters (tests, benchmarks).
    public let durable: Bool
    /// The database created for the application.
    public static let databaseName = "inmailq"
    /// The superuser created by `initdb`.
    public static let userName = "inmailq"

    public init(home: String, durable: Bool = true) {
        self.home = URL(fileURLWithPath: home).standardizedFileURL.path
        self.durable = durable
    }

    /// `INMAILQ_HOME`, or `./.inmailq` in the current directory.
    public static func defaultHome(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["INMAILQ_HOME"], !home.isEmpty { return home }
        return FileManager.default.currentDirectoryPath + "/.inmailq"
    }

    public var dataDirectory: String { home + "/pgdata" }
    public var socketDirectory: String { home + "/run" }
    public var logFile: String { home + "/log/postgres.log" }
    var portFile: String { home + "/port" }
    var passwordFile: String { home + "/password" }

    /// Where the cluster stands.
    public enum Status: Sendable, Equatable, CustomStringConvertible {
        case notCreated
        case stopped
        case running(pid: Int32, port: Int)

        public var description: String {
            switch self {
            case .notCreated: "not created"
            case .stopped: "stopped"
            case .running(let pid, let port): "running (pid \(pid), port \(port))"
            }
        }
    }

    public func status() -> Status {
        guard FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") else { return .notCreated }
        // postmaster.pid: line 1 is the pid, line 4 the port.
        guard let pidFile = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8) else {
            return .stopped
        }
        let lines = pidFile.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let pid = Int32(lines[0]), let port = Int(lines[3]), kill(pid, 0) == 0 || errno == EPERM
        else { return .stopped }
        return .running(pid: pid, port: port)
    }

    /// The connection URL of the application database (Unix socket, no password).
    public func url(database: String = LocalCluster.databaseName) throws -> String {
        let port: Int
        if case .running(_, let runningPort) = status() {
            port = runningPort
        } else if let stored = try? String(contentsOfFile: portFile, encoding: .utf8), let storedPort = Int(stored.trimmingCharacters(in: .whitespacesAndNewlines)) {
            port = storedPort
        } else {
            throw LocalClusterError("the cluster in \(home) has never been started; run `inmailq db start`")
        }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+")
        let socket = socketDirectory.addingPercentEncoding(withAllowedCharacters: allowed) ?? socketDirectory
        return "postgresql://\(Self.userName)@/\(database)?host=\(socket)&port=\(port)"
    }

    /// Creates the cluster if needed and starts it; starting a running cluster does nothing.
    /// Returns the application database's URL.
    @discardableResult
    public func start() throws -> String {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        return try withLock {
            if status() == .notCreated { try create() }
            if case .running = status() {
                return try url()
            }
            var lastError: (any Error)?
            // The port of the last run first, so clients reconnect to the same address.
            let storedPort = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            for attempt in 0..<4 {
                let port = try (attempt == 0 ? storedPort : nil) ?? Self.freeLoopbackPort()
                try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
                do {
                    try runServerTool(
                        "pg_ctl",
                        ["start", "-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", "-p \(port)"])
                    lastError = nil
                    break
                } catch {
                    lastError = error  // most likely the port was taken meanwhile: try another
                }
            }
            if let lastError { throw lastError }
            try createApplicationDatabase()
            return try url()
        }
    }

    /// Stops the server (fast shutdown: open sessions are ended, nothing is lost).
    public func stop() throws {
        try withLock {
            guard case .running = status() else { return }
            try runServerTool("pg_ctl", ["stop", "-D", dataDirectory, "-m", "fast", "-w", "-t", "60"])
        }
    }

    /// Stops the server and removes `home` once process `pid` has exited (for throwaway clusters).
    public func stopAndRemoveWhenProcessExits(_ pid: Int32) throws {
        let pgCtl = try serverCommand("pg_ctl", ["stop", "-D", dataDirectory, "-m", "immediate"])
        let stopCommand = pgCtl.map(shellQuote).joined(separator: " ")
        let script = "while kill -0 \(pid) 2>/dev/null; do sleep 1; done; \(stopCommand) >/dev/null 2>&1; rm -rf \(shellQuote(home))"
        // setsid: the watchdog outlives a Ctrl-C sent to the caller's process group.
        _ = try ChildProcess.spawn(["/usr/bin/setsid", "/bin/sh", "-c", script], outputPath: "/dev/null")
    }

    // MARK: Creating

    private func create() throws {
        let fileManager = FileManager.default
        for directory in [dataDirectory, socketDirectory, home + "/log"] {
            try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let password = Self.randomPassword()
        try password.write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o600)
        // initdb reads the superuser's password from a file the server user can read.
        let initialPasswordFile = socketDirectory + "/initial-password"
        try password.write(toFile: initialPasswordFile, atomically: true, encoding: .utf8)
        defer { try? fileManager.removeItem(atPath: initialPasswordFile) }
        if let owner = try serverUser() {
            try checkReachable(by: owner)
            for path in [dataDirectory, socketDirectory, home + "/log", initialPasswordFile] {
                guard chown(path, owner.uid, owner.gid) == 0 else {
                    throw LocalClusterError("cannot give \(path) to user \(owner.name): \(String(cString: strerror(errno)))")
                }
            }
        }
        var arguments = [
            "-D", dataDirectory, "-U", Self.userName, "--pwfile=\(initialPasswordFile)",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        ]
        if !durable { arguments.append("--no-sync") }
        try runServerTool("initdb", arguments)
        var settings = """

            # --- written by inmailq ---
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '\(socketDirectory)'
            unix_socket_permissions = 0700
            max_connections = 200
            shared_buffers = 128MB
            log_min_messages = warning
            log_line_prefix = '%m [%p] %q%a '

            """
        if !durable {
            settings += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(settings.utf8))
    }

    private func createApplicationDatabase() throws {
        let connection = try Connection(ConnectionConfiguration(try url(database: "postgres"), applicationName: "inmailq-db"))
        let exists = try connection.query("select 1 from pg_database where datname = \(Self.databaseName)").rowCount > 0
        if !exists {
            try connection.runScript("create database \(quoteIdentifier(Self.databaseName))")
        }
    }

    // MARK: Running the server's tools

    struct ServerUser {
        let name: String
        let uid: uid_t
        let gid: gid_t
    }

    /// The user the server runs as when the caller is root; nil when it runs as the caller.
    private func serverUser() throws -> ServerUser? {
        guard geteuid() == 0 else { return nil }
        let name = ProcessInfo.processInfo.environment["INMAILQ_PG_USER"] ?? "postgres"
        guard let entry = getpwnam(name) else {
            throw LocalClusterError("running as root, the server must run as an unprivileged user, but user \"\(name)\" does not exist (install postgresql, or set INMAILQ_PG_USER)")
        }
        return ServerUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// Fails clearly when the server user cannot reach `home` (for example under /root).
    private func checkReachable(by owner: ServerUser) throws {
        let probe = try ChildProcess.spawn(["/usr/sbin/runuser", "-u", owner.name, "--", "/usr/bin/test", "-x", home])
        guard probe.wait() == 0 else {
            throw LocalClusterError("user \(owner.name), which runs the server, cannot reach \(home); set INMAILQ_HOME to a directory it can traverse (e.g. under /var/tmp)")
        }
    }

    /// The argument vector that runs a server tool, as the server user when the caller is root.
    private func serverCommand(_ tool: String, _ arguments: [String]) throws -> [String] {
        let path = try Self.serverBinDirectory() + "/" + tool
        if let owner = try serverUser() {
            return ["/usr/sbin/runuser", "-u", owner.name, "--", path] + arguments
        }
        return [path] + arguments
    }

    private func runServerTool(_ tool: String, _ arguments: [String]) throws {
        do {
            _ = try ChildProcess.run(try serverCommand(tool, arguments))
        } catch let error as ChildProcessError {
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8))?.split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
            throw LocalClusterError("\(error)\(log.isEmpty ? "" : "\nserver log (\(logFile)):\n\(log)")")
        }
    }

    /// `INMAILQ_PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
    public static func serverBinDirectory() throws -> String {
        let fileManager = FileManager.default
        if let directory = ProcessInfo.processInfo.environment["INMAILQ_PG_BIN"], !directory.isEmpty {
            return directory
        }
        let versions = (try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        let newest = versions.compactMap(Int.init).sorted().last
        if let newest, fileManager.isExecutableFile(atPath: "/usr/lib/postgresql/\(newest)/bin/initdb") {
            return "/usr/lib/postgresql/\(newest)/bin"
        }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            if fileManager.isExecutableFile(atPath: "\(directory)/initdb") { return String(directory) }
        }
        throw LocalClusterError("no PostgreSQL server found (initdb): install the postgresql package (`make deps`) or set INMAILQ_PG_BIN")
    }

    // MARK: Small pieces

    /// Serialises start and stop between processes sharing `home`.
    private func withLock<T>(_ body: () throws -> T) throws -> T {
        let descriptor = open(home + "/lock", O_CREAT | O_RDWR, 0o600)
        guard descriptor >= 0 else { throw LocalClusterError("cannot open \(home)/lock: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        flock(descriptor, LOCK_EX)
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    public static func freeLoopbackPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw LocalClusterError("cannot open a socket to find a free port") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw LocalClusterError("cannot find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func randomPassword() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<32).map { _ in alphabet.randomElement()! })
    }
}

/// A problem creating, starting or stopping a local cluster, with what to do about it.
public struct LocalClusterError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

func shellQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
