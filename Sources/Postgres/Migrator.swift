import Foundation

/// One versioned schema change: a file named `NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    /// Reads every `NNNN_name.sql` in `directory`, in version order; two files with one version
    /// number, or a `.sql` file without a number, are refused.
    public static func load(from directory: String) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        var migrations: [Migration] = []
        for file in files {
            let stem = String(file.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError("\(directory)/\(file): a migration file is named NNNN_name.sql")
            }
            if let previous = migrations.last, previous.version == version {
                throw MigrationError("\(directory): \(file) has the same version \(version) as \(previous.name)")
            }
            let sql = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            migrations.append(Migration(version: version, name: file, sql: sql))
        }
        return migrations
    }
}

/// A migration problem a person must resolve (a changed file, a bad name).
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Applies migrations in version order, each in its own transaction, recorded with a checksum in
/// `schema_migrations`. Safe to run from several processes at once: an advisory lock lets one
/// apply while the others wait and then find nothing left to do.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    /// Key of the session advisory lock held while migrating ("inmailq:migrate").
    static let lockKey: Int64 = 0x696E_6D61_696C_7101

    public init(migrations: [Migration]) {
        self.migrations = migrations
    }

    /// An applied migration as recorded.
    public struct Applied: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let checksum: String
    }

    /// Applies what is missing and returns the migrations applied by this call. Throws, before
    /// applying anything, when an applied file has changed or is missing since it was applied.
    @discardableResult
    public func migrate(_ connection: Connection, log: (String) -> Void = { _ in }) throws -> [Migration] {
        try connection.execute("select pg_advisory_lock(\(Self.lockKey))")
        defer { _ = try? connection.execute("select pg_advisory_unlock(\(Self.lockKey))") }
        try connection.runScript(
            """
            create table if not exists schema_migrations (
                version    integer primary key,
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """)
        let applied = try appliedMigrations(connection)
        try verify(applied: applied, connection: connection)
        let appliedVersions = Set(applied.map(\.version))
        var done: [Migration] = []
        for migration in migrations where !appliedVersions.contains(migration.version) {
            try connection.transaction { connection in
                try connection.runScript(migration.sql)
                try connection.execute(
                    """
                    insert into schema_migrations (version, name, checksum)
                    values (\(migration.version), \(migration.name), \(Self.checksumSQL(migration.sql)))
                    """)
            }
            log("applied \(migration.name)")
            done.append(migration)
        }
        return done
    }

    /// What `schema_migrations` records, in version order (empty before the first run).
    public func appliedMigrations(_ connection: Connection) throws -> [Applied] {
        let exists = try connection.query("select to_regclass('schema_migrations') is not null as present").first?
            .decode(Bool.self, "present") ?? false
        guard exists else { return [] }
        return try connection.query("select version, name, checksum from schema_migrations order by version").rows.map {
            Applied(version: try $0.decode(Int.self, "version"), name: try $0.decode(String.self, "name"), checksum: try $0.decode(String.self, "checksum"))
        }
    }

    private func verify(applied: [Applied], connection: Connection) throws {
        let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for record in applied {
            guard let migration = byVersion[record.version] else {
                throw MigrationError("migration \(record.name) was applied but its file is missing; restore it (a missing file means this binary and the database disagree)")
            }
            let checksum = try connection.query("select \(Self.checksumSQL(migration.sql)) as sum").first!.decode(String.self, "sum")
            guard checksum == record.checksum else {
                throw MigrationError("migration \(migration.name) has changed since it was applied (checksum \(record.checksum.prefix(12)) then, \(checksum.prefix(12)) now); never edit an applied migration: revert the file and add a new one")
            }
        }
    }

    /// The SHA-256 of the file's text, computed by the server (no crypto library needed).
    static func checksumSQL(_ text: String) -> SQL {
        "encode(sha256(convert_to(\(text), 'UTF8')), 'hex')"
    }
}
