import EmbeddedPostgres
import Foundation
import InMail
import Postgres
import Synchronization
import Testing

/// The PostgreSQL server the tests use: `DATABASE_URL` when set, else a private throwaway
/// cluster in a temp directory, started once per test process (the same `LocalCluster` that
/// `inmailq db start` uses) and stopped and removed when the process exits.
enum TestServer {
    struct SetupFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// The server's maintenance database (`postgres`), to create test databases from.
    static let admin: Result<ConnectionConfiguration, SetupFailure> = {
        do {
            if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
                return .success(try ConnectionConfiguration(url).withDatabase("postgres"))
            }
            let home = NSTemporaryDirectory() + "inmailq-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let cluster = LocalCluster(home: home, durable: false)
            try cluster.start()
            try cluster.stopAndRemoveWhenProcessExits(getpid())
            return .success(ConnectionConfiguration(try cluster.url(database: "postgres"), applicationName: "inmailq-test"))
        } catch {
            return .failure(SetupFailure(description: "cannot start the test database server: \(error)"))
        }
    }()

    private static let templateReady = Mutex<Result<String, SetupFailure>?>(nil)

    /// The name of a database holding every migration, made once per process and copied per test.
    static func migratedTemplate() throws -> String {
        try templateReady.withLock { state in
            if let state { return try state.get() }
            let result: Result<String, SetupFailure>
            do {
                let name = "inmailq_template_\(getpid())"
                let admin = try Connection(try TestServer.admin.get())
                try admin.runScript("drop database if exists \(quoteIdentifier(name))")
                try admin.runScript("create database \(quoteIdentifier(name))")
                let connection = try Connection(try TestServer.admin.get().withDatabase(name))
                try InMailSchema.migrator(sqlDirectory: TestPaths.sql, sandbox: true).migrate(connection)
                result = .success(name)
            } catch {
                result = .failure(SetupFailure(description: "cannot prepare the migrated template database: \(error)"))
            }
            state = result
            return try result.get()
        }
    }
}

/// A database of its own for one test: empty, or a copy of the fully migrated schema.
struct TestDatabase {
    let name: String
    let configuration: ConnectionConfiguration

    /// Creates a fresh database; `migrated` copies the migrated template (fast, no re-migration).
    init(migrated: Bool = true) throws {
        let admin = try Connection(try TestServer.admin.get())
        name = "t_\(getpid())_\(UInt64.random(in: 0...UInt64.max) % 1_000_000_000)"
        let template = migrated ? try TestServer.migratedTemplate() : "template1"
        try Self.create(name, from: template, using: admin)
        configuration = try TestServer.admin.get().withDatabase(name)
    }

    private static func create(_ name: String, from template: String, using admin: Connection) throws {
        for attempt in 0... {
            do {
                try admin.runScript("create database \(quoteIdentifier(name)) template \(quoteIdentifier(template))")
                return
            } catch {
                // 55006: the template is briefly in use by a concurrent copy.
                guard error.sqlState == "55006", attempt < 20 else { throw error }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    func connect() throws -> Connection {
        try Connection(configuration)
    }

    /// A conninfo string for child processes (`--database-url`).
    var url: String { configuration.conninfo }
}

/// Paths of the checkout the tests run in.
enum TestPaths {
    /// The package root, found from this source file's location.
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static var sql: String { root + "/sql" }

    /// The `inmailq` executable built beside the test bundle (`swift build` puts them together).
    static var executable: String {
        if let configured = ProcessInfo.processInfo.environment["INMAILQ_BIN"] { return configured }
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("inmailq").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root + "/.build/debug/inmailq"
    }
}

/// The single number a counting query returns.
func count(_ sql: SQL, _ connection: Connection) throws -> Int {
    try connection.query(sql).first!.decode(Int.self, at: 0)
}

/// How many sessions wait for a lock while running a query like `pattern` (a LIKE pattern).
/// Read afresh each time: in a transaction, pg_stat_activity is otherwise read once and kept.
func sessionsWaitingForALock(runningLike pattern: String, _ connection: Connection) throws -> Int {
    try connection.execute("select pg_stat_clear_snapshot()")
    return try count("select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like \(pattern)", connection)
}

/// Work on a thread (and a session) of its own, for a test that races it against a transaction
/// the test holds open: started at once, its outcome read once it has ended.
final class RacingWork<Value: Sendable>: Sendable {
    private let result = Mutex<Result<Value, any Error>?>(nil)

    init(_ work: @escaping @Sendable () throws -> Value) {
        Thread {
            let outcome = Result { try work() }
            self.result.withLock { $0 = outcome }
        }.start()
    }

    /// Starts `work`, then expects it to be waiting, within 10 s, for a lock that `connection`'s
    /// open transaction holds, its statement like `pattern` (a LIKE pattern): the race is set.
    static func waitingForALock(heldBy connection: Connection, runningLike pattern: String,
                                sourceLocation: SourceLocation = #_sourceLocation,
                                _ work: @escaping @Sendable () throws -> Value) throws -> RacingWork {
        let racer = RacingWork(work)
        #expect(try waitUntil(timeout: .seconds(10)) { try sessionsWaitingForALock(runningLike: pattern, connection) == 1 },
                sourceLocation: sourceLocation)
        return racer
    }

    /// Its outcome, waiting up to `timeout` for it to end; nil when it has not.
    func outcome(within timeout: Duration) -> Result<Value, any Error>? {
        var outcome: Result<Value, any Error>?
        _ = waitUntil(timeout: timeout) {
            outcome = result.withLock { $0 }
            return outcome != nil
        }
        return outcome
    }

    /// The error PostgreSQL refused it with, waiting up to `timeout` for it to end; nil, with an
    /// issue recorded saying `what` was not refused, when it ended otherwise or not in time.
    func refusal(within timeout: Duration, of what: String, sourceLocation: SourceLocation = #_sourceLocation) -> PostgresError? {
        let outcome = outcome(within: timeout)
        guard case .failure(let error as PostgresError) = outcome else {
            Issue.record("\(what) was not refused: \(String(describing: outcome))", sourceLocation: sourceLocation)
            return nil
        }
        return error
    }
}

/// Asks `condition` every 50 ms until it holds or `timeout` has passed; whether it held. For a
/// test that waits on another thread or session (a lock wait begun, a result arrived).
func waitUntil(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        Thread.sleep(forTimeInterval: 0.05)
    }
}

/// Accounts that sent more than a daily limit in one of their local days (S6, and the message
/// limit), counted from the spent reservations.
func accountsOverADailyLimit(_ connection: Connection) throws -> Int {
    try count(
        """
        select count(*) from (
            select r.account_id, r.local_day, r.channel, count(*) as sent, a.daily_inmail_limit, a.daily_message_limit
            from reservations r join sender_accounts a on a.id = r.account_id
            where r.state = 'spent' group by 1, 2, 3, 5, 6
        ) d
        where sent > case channel when 'inmail' then daily_inmail_limit else daily_message_limit end
        """, connection)
}

/// Accounts whose credit ledger does not sum to their grants' remaining credits, or whose
/// balance is outside 0 and the plan's cap (A5).
func accountsWithUnbalancedLedgers(_ connection: Connection) throws -> Int {
    try count(
        """
        select count(*) from sender_accounts a join plans p on p.code = a.plan_code
        where (select coalesce(sum(amount), 0) from credit_ledger l where l.account_id = a.id)
              <> (select coalesce(sum(remaining), 0) from credit_grants g where g.account_id = a.id)
           or credit_balance(a.id) not between 0 and p.credit_cap
        """, connection)
}
