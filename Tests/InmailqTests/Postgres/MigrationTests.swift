import Foundation
import Postgres
import Testing

@Suite("Migrations")
struct MigrationTests {
    /// A migrations directory of three files; the second sleeps so that concurrent runs overlap.
    func makeMigrations() throws -> String {
        let directory = NSTemporaryDirectory() + "inmailq-migrations-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
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
        #expect(result.output.contains("no_such_function"))
        let connection = try db.connect()
        #expect(try connection.query("select max(version) as v from schema_migrations").first?.decode(Int.self, "v") == 3)
        #expect(try connection.query("select to_regclass('d') is null as absent").first?.decode(Bool.self, "absent") == true)
    }
}
