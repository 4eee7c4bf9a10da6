import Foundation
import Postgres

/// inmailq's SQL by owner (directories of `sql/`), in the order they are applied: each may use
/// what the ones before it define, never what comes after.
public enum InMailSchema {
    /// The owners every installation has: the queue, then accounts and credits, then campaigns,
    /// contacts, messages and reports, then the gateway's webhooks, then the web console's logins.
    public static let owners = ["queue", "accounts", "outreach", "inbox", "console"]
    /// The sandbox courier's state, installed only where that courier is used.
    public static let sandboxOwner = "sandbox"
    /// Roles, grants and row-level security: last, so that its grants cover every table.
    public static let accessOwner = "access"

    /// The migrator for the owners under `sqlDirectory`, with the sandbox's tables when asked.
    public static func migrator(sqlDirectory: String, sandbox: Bool) throws -> Migrator {
        let names = owners + (sandbox ? [sandboxOwner] : []) + [accessOwner]
        return Migrator(owners: try names.map { try SchemaOwner.load($0, from: sqlDirectory + "/" + $0) })
    }
}
