import Foundation
import InMail
import Postgres
import Testing

@Suite("Migrations")
struct MigrationTests {
    /// A migrations directory of three files; the second sleeps so that concurrent runs overlap.
    func makeMigrations() throws -> String {
        let directory = TestScratch.directory + "/migrations-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "create table a (id int primary key);".write(toFile: directory + "/0001_a.sql", atomically: true, encoding: .utf8)
        try "select pg_sleep(0.5); create table b (id int primary key);".write(toFile: directory + "/0002_b.sql", atomically: true, encoding: .utf8)
        try "insert into a values (1);".write(toFile: directory + "/0003_seed.sql", atomically: true, encoding: .utf8)
        return directory
    }

    @Test func twoProcessesMigratingAtOnceBothSucceedAndApplyEachFileOnce() throws {
        let db = try TestDatabase(migrated: false)
        let directory = try makeMigrations()
        let first = try InmailqProcess.start(["migrate", "--database-url", db.url, "--migrations", directory])
        let second = try InmailqProcess.start(["migrate", "--database-url", db.url, "--migrations", directory])
        #expect(first.child.wait() == 0, "first: \(first.output)")
        #expect(second.child.wait() == 0, "second: \(second.output)")
        let connection = try db.connect()
        let versions = try connection.query("select version from schema_migrations order by version").rows.map { try $0.decode(Int.self, "version") }
        #expect(versions == [1, 2, 3])
        // 0003 inserted its row exactly once (a second run would have hit the primary key).
        #expect(try connection.query("select count(*) as n from a").first?.decode(Int.self, "n") == 1)
    }

    @Test func changedAppliedFileIsRefusedWithAClearMessage() throws {
        let db = try TestDatabase(migrated: false)
        let directory = try makeMigrations()
        let connection = try db.connect()
        try Migrator(owners: [try SchemaOwner.load("m", from: directory)]).migrate(connection)
        try "create table a (id bigint primary key);".write(toFile: directory + "/0001_a.sql", atomically: true, encoding: .utf8)
        try "create table c (id int);".write(toFile: directory + "/0004_c.sql", atomically: true, encoding: .utf8)
        let error = #expect(throws: MigrationError.self) {
            try Migrator(owners: [try SchemaOwner.load("m", from: directory)]).migrate(connection)
        }
        #expect(error?.description.contains("m/0001_a.sql has changed") == true)
        // Nothing after the refusal was applied.
        #expect(try connection.query("select to_regclass('c') is null as absent").first?.decode(Bool.self, "absent") == true)
    }

    @Test func failingMigrationLeavesNothingHalfApplied() throws {
        let db = try TestDatabase(migrated: false)
        let directory = try makeMigrations()
        try "create table d (id int); select no_such_function();".write(toFile: directory + "/0004_broken.sql", atomically: true, encoding: .utf8)
        let result = try InmailqProcess.run(["migrate", "--database-url", db.url, "--migrations", directory])
        #expect(result.status != 0)
        #expect(result.output.contains("0004_broken.sql failed, and nothing of it was applied") && result.output.contains("no_such_function"),
                "\(result.output)")
        let connection = try db.connect()
        #expect(try connection.query("select max(version) as v from schema_migrations").first?.decode(Int.self, "v") == 3)
        #expect(try connection.query("select to_regclass('d') is null as absent").first?.decode(Bool.self, "absent") == true)
    }
}

@Suite("Migrations by owner")
struct OwnerMigrationTests {
    /// Two owners in temp directories: `base` (a versioned table and a repeatable function) and
    /// `top` (a versioned table whose default uses base's versioned function).
    func makeOwners() throws -> (base: String, top: String) {
        let root = TestScratch.directory + "/owners-\(UInt32.random(in: 0...UInt32.max))"
        for owner in ["base", "top"] {
            try FileManager.default.createDirectory(atPath: root + "/" + owner, withIntermediateDirectories: true)
        }
        try "create table counters (id int primary key, n int not null default 0); create function base_version() returns int language sql as 'select 1';"
            .write(toFile: root + "/base/0001_counters.sql", atomically: true, encoding: .utf8)
        try "create or replace function greeting() returns text language sql as $$ select 'hello' $$;"
            .write(toFile: root + "/base/R__functions.sql", atomically: true, encoding: .utf8)
        try "create table items (id int primary key, version int not null default base_version());"
            .write(toFile: root + "/top/0001_items.sql", atomically: true, encoding: .utf8)
        return (root + "/base", root + "/top")
    }

    func migrator(_ directories: (base: String, top: String)) throws -> Migrator {
        Migrator(owners: [try SchemaOwner.load("base", from: directories.base), try SchemaOwner.load("top", from: directories.top)])
    }

    @Test func aChangedRepeatableFileIsAppliedAgainAndAnUnchangedOneIsNot() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        let directories = try makeOwners()
        let first = try migrator(directories).migrate(connection)
        #expect(first.map(\.description) == ["base/0001_counters.sql", "base/R__functions.sql", "top/0001_items.sql"])
        #expect(try migrator(directories).migrate(connection).isEmpty)  // nothing changed: nothing applied

        try "create or replace function greeting() returns text language sql as $$ select 'hello again' $$;"
            .write(toFile: directories.base + "/R__functions.sql", atomically: true, encoding: .utf8)
        #expect(try migrator(directories).pending(connection).repeatable.map(\.description) == ["base/R__functions.sql"])
        let second = try migrator(directories).migrate(connection)
        #expect(second.map(\.description) == ["base/R__functions.sql"])
        #expect(try connection.queryOne("select greeting() as g").decode(String.self, "g") == "hello again")
        #expect(try connection.queryOne("select count(*) as n from schema_migrations where owner = 'base'").decode(Int.self, "n") == 2)
    }

    @Test func aNewVersionedMigrationAppliesEveryRepeatableFileAgainAfterIt() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        let directories = try makeOwners()
        try migrator(directories).migrate(connection)
        // A new table drops the function the repeatable file defines; the file must bring it back.
        try "create table notes (id int); drop function greeting();"
            .write(toFile: directories.base + "/0002_notes.sql", atomically: true, encoding: .utf8)
        let applied = try migrator(directories).migrate(connection)
        #expect(applied.map(\.description) == ["base/0002_notes.sql", "base/R__functions.sql"])
        #expect(try connection.queryOne("select greeting() as g").decode(String.self, "g") == "hello")
    }

    @Test func aDatabaseMadeByAnEarlierBuildIsRefusedWithAClearMessage() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        // What builds before the owners recorded: versions and names only.
        try connection.runScript(
            """
            create table schema_migrations (version integer primary key, name text not null, checksum text not null,
                                            applied_at timestamptz not null default now());
            insert into schema_migrations values (1, '0001_queue.sql', 'x');
            """)
        let error = #expect(throws: MigrationError.self) { try migrator(try makeOwners()).migrate(connection) }
        #expect(error?.description.contains("made by an earlier build of inmailq") == true)
        #expect(try connection.queryOne("select to_regclass('counters') is null as absent").decode(Bool.self, "absent"))
    }

    @Test func theShippedSchemaAppliesToAnEmptyDatabaseAndThenHasNothingPending() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        let shipped = try InMailSchema.migrator(sqlDirectory: TestPaths.sql, sandbox: false)
        try shipped.migrate(connection)
        let pending = try shipped.pending(connection)
        #expect(pending.versioned.isEmpty && pending.repeatable.isEmpty)
        // The sandbox is installed only where asked for.
        #expect(try connection.queryOne("select to_regclass('sandbox_settings') is null as absent").decode(Bool.self, "absent"))
        try InMailSchema.migrator(sqlDirectory: TestPaths.sql, sandbox: true).migrate(connection)
        #expect(try connection.queryOne("select to_regclass('sandbox_settings') is not null as present").decode(Bool.self, "present"))
    }
}
