import Foundation
import Postgres
import Synchronization

/// Login roles of the test cluster, one per group role of sql/access, made once (roles belong
/// to the whole cluster, and every test database shares them). They log in through the
/// cluster's Unix socket, which trusts local users.
enum TestRoles {
    enum Group: String {
        case worker = "inmailq_worker", `operator` = "inmailq_operator", reader = "inmailq_reader"
    }

    /// Group logins this process has made sure of.
    private static let ready = Mutex<Set<String>>([])

    /// The login of `group`, created if missing (once per process).
    static func login(_ group: Group) throws -> String {
        let name = "inmailq_test_\(group.rawValue.dropFirst("inmailq_".count))"
        guard !ready.withLock({ $0.contains(name) }) else { return name }
        try ensure(name, granted: group.rawValue)
        ready.withLock { _ = $0.insert(name) }
        return name
    }

    /// A login that belongs to no group yet (a reader the test maps to an agency).
    static func newLogin(_ prefix: String) throws -> String {
        let name = "\(prefix)_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try ensure(name, granted: nil)
        return name
    }

    private static func ensure(_ name: String, granted group: String?) throws {
        _ = try TestServer.migratedTemplate()  // its migration makes the group roles
        let admin = try Connection(try TestServer.admin.get())
        do {
            try admin.runScript("create role \(quoteIdentifier(name)) login")
        } catch {
            // 42710 duplicate_object, 23505: another test process made it meanwhile.
            guard error.sqlState == "42710" || error.sqlState == "23505" else { throw error }
        }
        if let group { try admin.runScript("grant \(group) to \(quoteIdentifier(name))") }
    }

    /// `db` as `login` sees it: the same conninfo, another user.
    static func url(_ db: TestDatabase, as login: String) -> String {
        db.url + " user=\(login)"
    }

    static func connect(_ db: TestDatabase, as login: String) throws -> Connection {
        try Connection(ConnectionConfiguration(url(db, as: login)))
    }
}
