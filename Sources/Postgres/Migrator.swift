import Foundation

/// One versioned schema change of an owner: a file named `NNNN_name.sql`, applied once.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// One repeatable file of an owner, `R__name.sql`: the current `create or replace` of its
/// functions, views and triggers, applied after every versioned migration and again whenever
/// its text changes.
public struct RepeatableScript: Sendable, Equatable {
    public let name: String
    public let sql: String
}

/// The SQL one part of the system owns (the queue, the accounts, ...): its versioned migrations
/// in version order and its repeatable files in name order.
public struct SchemaOwner: Sendable, Equatable {
    public let name: String
    public let migrations: [Migration]
    public let repeatables: [RepeatableScript]

    public init(name: String, migrations: [Migration], repeatables: [RepeatableScript] = []) {
        self.name = name
        self.migrations = migrations
        self.repeatables = repeatables
    }

    /// Reads `directory`: every `NNNN_name.sql` (versioned) and `R__name.sql` (repeatable).
    /// Two versioned files with one number, or any other `.sql` file, are refused.
    public static func load(_ name: String, from directory: String) throws -> SchemaOwner {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        var migrations: [Migration] = []
        var repeatables: [RepeatableScript] = []
        for file in files {
            let sql = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            if file.hasPrefix("R__") {
                repeatables.append(RepeatableScript(name: file, sql: sql))
                continue
            }
            let stem = String(file.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError("\(directory)/\(file): a migration file is named NNNN_name.sql (versioned) or R__name.sql (repeatable)")
            }
            if let previous = migrations.last, previous.version == version {
                throw MigrationError("\(directory): \(file) has the same version \(version) as \(previous.name)")
            }
            migrations.append(Migration(version: version, name: file, sql: sql))
        }
        return SchemaOwner(name: name, migrations: migrations, repeatables: repeatables)
    }
}

/// A migration problem a person must resolve (a changed file, a bad name, a database made by an
/// earlier build).
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Brings a database's schema up to date, owner by owner in the order given (an owner may use
/// what the owners before it define, never what comes after). For each owner: its pending
/// versioned migrations in order, each in its own transaction and recorded once with a checksum;
/// then its repeatable files, each re-applied when its checksum changed or when anything before it
/// (a versioned migration, or an earlier owner's repeatable file) was applied in this call, so an
/// owner's grants and definitions always cover what the owners before it just made. Everything is
/// recorded in `schema_migrations`.
///
/// Safe to run from several processes at once: an advisory lock lets one apply while the others
/// wait and then find nothing left to do.
public struct Migrator: Sendable {
    public let owners: [SchemaOwner]

    /// Key of the session advisory lock held while migrating ("inmailq:migrate").
    static let lockKey: Int64 = 0x696E_6D61_696C_7101

    public init(owners: [SchemaOwner]) {
        self.owners = owners
    }

    /// A file as `schema_migrations` records it; `version` is nil for a repeatable file.
    public struct Applied: Sendable, Equatable {
        public let owner: String
        public let version: Int?
        public let name: String
        public let checksum: String
    }

    /// A file that `migrate` would apply now, as `owner/name`.
    public struct Pending: Sendable, Equatable, CustomStringConvertible {
        public let owner: String
        public let name: String
        public var description: String { "\(owner)/\(name)" }
    }

    /// Applies what is missing or changed and returns what it applied. Throws before applying
    /// anything when an applied versioned file has changed or is missing, or when the database
    /// was made by an earlier build whose schema cannot be upgraded in place.
    @discardableResult
    public func migrate(_ connection: Connection, log: (String) -> Void = { _ in }) throws -> [Pending] {
        try connection.execute("select pg_advisory_lock(\(Self.lockKey))")
        defer { _ = try? connection.execute("select pg_advisory_unlock(\(Self.lockKey))") }
        try refuseEarlierBuild(connection)
        try connection.runScript(
            """
            create table if not exists schema_migrations (
                owner      text not null,
                version    integer,             -- null for a repeatable file
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now(),
                primary key (owner, name),
                unique (owner, version)
            )
            """)
        let plan = try pending(connection)
        var done: [Pending] = []
        var anythingRan = false
        for owner in owners {
            for migration in owner.migrations where plan.versioned.contains(Pending(owner: owner.name, name: migration.name)) {
                try apply(owner: owner.name, version: migration.version, name: migration.name, sql: migration.sql, on: connection)
                log("applied \(owner.name)/\(migration.name)")
                done.append(Pending(owner: owner.name, name: migration.name))
                anythingRan = true
            }
            let reapplyAll = anythingRan  // fixed before this owner's own repeatable files run
            for script in owner.repeatables
            where reapplyAll || plan.repeatable.contains(Pending(owner: owner.name, name: script.name)) {
                try apply(owner: owner.name, version: nil, name: script.name, sql: script.sql, on: connection)
                log("applied \(owner.name)/\(script.name)")
                done.append(Pending(owner: owner.name, name: script.name))
                anythingRan = true
            }
        }
        return done
    }

    /// What `migrate` would apply: versioned migrations not yet applied and repeatable files
    /// whose text changed (when a versioned one is pending, every repeatable file is re-applied
    /// too). Throws as `migrate` does for a changed or missing versioned file.
    public func pending(_ connection: Connection) throws -> (versioned: [Pending], repeatable: [Pending]) {
        try refuseEarlierBuild(connection)
        let applied = try appliedFiles(connection)
        var versioned: [Pending] = []
        var repeatable: [Pending] = []
        for owner in owners {
            let recorded = Dictionary(applied.filter { $0.owner == owner.name }.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            let known = Set(owner.migrations.map(\.name) + owner.repeatables.map(\.name))
            if let missing = recorded.values.first(where: { $0.version != nil && !known.contains($0.name) }) {
                throw MigrationError("migration \(owner.name)/\(missing.name) was applied but its file is missing; restore it (a missing file means this binary and the database disagree)")
            }
            for migration in owner.migrations {
                guard let record = recorded[migration.name] else {
                    versioned.append(Pending(owner: owner.name, name: migration.name))
                    continue
                }
                let checksum = try Self.checksum(migration.sql, on: connection)
                guard checksum == record.checksum else {
                    throw MigrationError("migration \(owner.name)/\(migration.name) has changed since it was applied (checksum \(record.checksum.prefix(12)) then, \(checksum.prefix(12)) now); never edit an applied migration: revert the file and add a new one")
                }
            }
            for script in owner.repeatables where try recorded[script.name]?.checksum != Self.checksum(script.sql, on: connection) {
                repeatable.append(Pending(owner: owner.name, name: script.name))
            }
        }
        return (versioned, repeatable)
    }

    /// What `schema_migrations` records, by owner and then version (repeatable files last);
    /// empty before the first run.
    public func appliedFiles(_ connection: Connection) throws -> [Applied] {
        guard try connection.queryOne("select to_regclass('schema_migrations') is not null as present").decode(Bool.self, "present")
        else { return [] }
        return try connection.query(
            "select owner, version, name, checksum from schema_migrations order by owner, version nulls last, name"
        ).rows.map {
            Applied(
                owner: try $0.decode(String.self, "owner"), version: try $0.decode(Int?.self, "version"),
                name: try $0.decode(String.self, "name"), checksum: try $0.decode(String.self, "checksum"))
        }
    }

    /// Applies one file in its own transaction; a file the server refuses is named in the error.
    private func apply(owner: String, version: Int?, name: String, sql: String, on connection: Connection) throws {
        do {
            try connection.transaction { connection in
                try connection.runScript(sql)
                try connection.execute(
                    """
                    insert into schema_migrations (owner, version, name, checksum)
                    values (\(owner), \(version), \(name), \(Self.checksumSQL(sql)))
                    on conflict (owner, name) do update set checksum = excluded.checksum, applied_at = now()
                    """)
            }
        } catch let error as PostgresError {
            throw MigrationError("\(owner)/\(name) failed, and nothing of it was applied: \(error)")
        }
    }

    /// A database made before the schema was organised by owner records no owners: its schema
    /// is not the one these files build, and there is no path from it.
    private func refuseEarlierBuild(_ connection: Connection) throws {
        let earlier = try connection.queryOne(
            """
            select to_regclass('schema_migrations') is not null
                   and not exists (select 1 from information_schema.columns
                                   where table_schema = current_schema() and table_name = 'schema_migrations'
                                     and column_name = 'owner') as earlier
            """).decode(Bool.self, "earlier")
        if earlier {
            throw MigrationError("this database was made by an earlier build of inmailq, before its schema was organised by owner (sql/queue, sql/accounts, sql/outreach); it cannot be upgraded in place: migrate a new, empty database (no installation predates this change outside development)")
        }
    }

    private static func checksum(_ text: String, on connection: Connection) throws -> String {
        try connection.queryOne("select \(checksumSQL(text)) as sum").decode(String.self, "sum")
    }

    /// The SHA-256 of the file's text, computed by the server (no crypto library needed).
    static func checksumSQL(_ text: String) -> SQL {
        "encode(sha256(convert_to(\(text), 'UTF8')), 'hex')"
    }
}
