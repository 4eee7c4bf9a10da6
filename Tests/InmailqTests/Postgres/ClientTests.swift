import EmbeddedPostgres
import Foundation
import Postgres
import Testing

@Suite("PostgreSQL client")
struct ClientTests {
    @Test func everySupportedTypeRoundTripsIncludingNullAndNonASCII() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        try connection.runScript(
            """
            create table sample (
                i bigint, i32 integer, d double precision, b boolean, s text, at timestamptz,
                id uuid, doc jsonb, ints bigint[], texts text[], missing text
            )
            """)
        let at = Date(timeIntervalSince1970: 1_795_000_000.123456)
        let id = UUID()
        let text = "Zoë — 東京 🚀 'quote' \"double\" \\ back"
        let texts = ["a,b", "with \"quotes\"", "NULL", "", "ünï {brace}", "back\\slash \\\" 東京 🚀"]
        let doc = try JSONText(encoding: ["name": "Zoë", "n": "1"])
        let none: String? = nil
        try connection.execute(
            """
            insert into sample values (\(Int.max), \(Int32.min), \(3.25), \(true), \(text), \(at), \(id), \(doc),
                                       \([1, -2, 3]), \(texts), \(none))
            """)
        let row = try #require(try connection.query("select * from sample").first)
        #expect(try row.decode(Int.self, "i") == Int.max)
        #expect(try row.decode(Int32.self, "i32") == Int32.min)
        #expect(try row.decode(Double.self, "d") == 3.25)
        #expect(try row.decode(Bool.self, "b") == true)
        #expect(try row.decode(String.self, "s") == text)
        #expect(abs(try row.decode(Date.self, "at").timeIntervalSince(at)) < 0.000_001)
        #expect(try row.decode(UUID.self, "id") == id)
        #expect(try row.decode(JSONText.self, "doc").decode([String: String].self) == ["name": "Zoë", "n": "1"])
        #expect(try row.decode([Int].self, "ints") == [1, -2, 3])
        #expect(try row.decode([String].self, "texts") == texts)
        #expect(try row.decode(String?.self, "missing") == nil)
        #expect(try row.decode(Int?.self, "i") == Int.max)
    }

    @Test func decodingErrorNamesTheColumnAndItsType() throws {
        let connection = try TestDatabase(migrated: false).connect()
        let row = try #require(try connection.query("select 'abc'::text as label, null::int as gone").first)
        let wrongType = #expect(throws: PostgresError.self) { try row.decode(Int.self, "label") }
        #expect(wrongType?.kind == .decoding)
        #expect(wrongType?.message.contains("\"label\"") == true)
        #expect(wrongType?.message.contains("text") == true)
        let null = #expect(throws: PostgresError.self) { try row.decode(Int.self, "gone") }
        #expect(null?.message.contains("\"gone\" is NULL") == true)
    }

    @Test func syntaxErrorAndUniqueViolationCarrySQLState() throws {
        let connection = try TestDatabase(migrated: false).connect()
        let syntax = #expect(throws: PostgresError.self) { try connection.execute("selec 1") }
        #expect(syntax?.sqlState == "42601")
        #expect(syntax?.kind == .server)
        #expect(syntax?.isRetryable == false)

        try connection.runScript("create table members (key text constraint members_key_unique unique)")
        try connection.execute("insert into members values (\("lisa"))")
        let duplicate = #expect(throws: PostgresError.self) { try connection.execute("insert into members values (\("lisa"))") }
        #expect(duplicate?.sqlState == "23505")
        #expect(duplicate?.constraint == "members_key_unique")
        #expect(duplicate?.detail?.contains("lisa") == true)
        // The connection is still usable after a failed statement.
        #expect(try connection.query("select count(*) as n from members").first?.decode(Int.self, "n") == 1)
    }

    @Test func injectionAttemptIsStoredVerbatimAndDropsNothing() throws {
        let connection = try TestDatabase(migrated: false).connect()
        try connection.runScript("create table t (v text)")
        let hostile = "'); DROP TABLE t; --"
        try connection.execute("insert into t (v) values (\(hostile))")
        try connection.execute("insert into t (v) values (\(hostile))", prepared: true)
        let stored = try connection.query("select v from t").rows.map { try $0.decode(String.self, "v") }
        #expect(stored == [hostile, hostile])
    }

    @Test func fragmentsComposeWithTheirValuesBound() throws {
        let connection = try TestDatabase(migrated: false).connect()
        let low: SQL = "n >= \(2)"
        let high: SQL = "n <= \(4)"
        let condition = SQL.joined([low, high], separator: " and ")
        let rows = try connection.query("select n from generate_series(1, 6) as n where \(condition) and n <> \(3) order by n")
        #expect(try rows.rows.map { try $0.decode(Int.self, "n") } == [2, 4])
        #expect(("a = \(1) and \(SQL("b = \(2)"))" as SQL).rendered.text == "a = $1 and b = $2")
    }

    @Test func transactionWhoseBodyThrowsLeavesNoRow() throws {
        struct Abort: Error {}
        let connection = try TestDatabase(migrated: false).connect()
        try connection.runScript("create table t (v int)")
        #expect(throws: Abort.self) {
            try connection.transaction { tx in
                try tx.execute("insert into t values (\(1))")
                throw Abort()
            }
        }
        #expect(connection.isInTransaction == false)
        try connection.transaction { tx in try tx.execute("insert into t values (\(2))") }
        #expect(try connection.query("select v from t").rows.map { try $0.decode(Int.self, "v") } == [2])
    }

    @Test func retryableErrorRunsTheTransactionAgain() throws {
        let connection = try TestDatabase(migrated: false).connect()
        try connection.runScript(
            """
            create table t (v int);
            create function fail_serialization() returns void language plpgsql as
              $$ begin raise exception 'simulated conflict' using errcode = '40001'; end $$;
            """)
        var runs = 0
        try connection.transaction(retry: .retryable) { tx in
            runs += 1
            try tx.execute("insert into t values (\(runs))")
            if runs < 3 { try tx.execute("select fail_serialization()") }
        }
        #expect(runs == 3)
        // Only the successful run's row is kept.
        #expect(try connection.query("select v from t").rows.map { try $0.decode(Int.self, "v") } == [3])

        var once = 0
        let error = #expect(throws: PostgresError.self) {
            try connection.transaction(retry: .never) { tx in
                once += 1
                try tx.execute("select fail_serialization()")
            }
        }
        #expect(once == 1)
        #expect(error?.sqlState == "40001")
        #expect(error?.isRetryable == true)
    }

    @Test func aConnectionLostInsideATransactionIsNeverResumedOutsideIt() throws {
        let db = try TestDatabase(migrated: false)
        let connection = try db.connect()
        let killer = try db.connect()
        try connection.runScript("create table t (v int)")
        var runs = 0
        try connection.transaction(retry: .retryable) { tx in
            runs += 1
            try tx.execute("insert into t values (\(runs))")
            if runs == 1 {
                try killer.execute("select pg_terminate_backend(\(tx.backendPID))")
                _ = try? tx.execute("select 1")  // a body that swallows the failure...
                try tx.execute("insert into t values (\(100))")  // ...still cannot go on without its transaction
            }
        }
        #expect(runs == 2)
        #expect(try connection.query("select v from t").rows.map { try $0.decode(Int.self, "v") } == [2])
    }

    @Test func notifyReachesListenerAndSilentWaitTimesOut() throws {
        let db = try TestDatabase(migrated: false)
        let listener = try db.connect()
        let sender = try db.connect()
        try listener.listen("jobs ready")  // a name that needs quoting
        let started = ContinuousClock.now
        #expect(try listener.nextNotification(timeout: .milliseconds(200)) == nil)
        #expect(ContinuousClock.now - started >= .milliseconds(190))

        try sender.notify("jobs ready", payload: "payload ✓")
        let notification = try listener.nextNotification(timeout: .seconds(5))
        #expect(notification?.channel == "jobs ready")
        #expect(notification?.payload == "payload ✓")
        #expect(notification?.senderPID == sender.backendPID)
    }

    @Test func waitForNotificationEndsWhenInterrupted() throws {
        let listener = try TestDatabase(migrated: false).connect()
        try listener.listen("never")
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        defer { close(descriptors[0]); close(descriptors[1]) }
        let writeEnd = descriptors[1]
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.1)
            var byte: UInt8 = 1
            _ = write(writeEnd, &byte, 1)
        }
        let started = ContinuousClock.now
        #expect(try listener.nextNotification(timeout: .seconds(10), interruptDescriptor: descriptors[0]) == nil)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func forEachBatchStreamsAResultThroughACursorInOrder() throws {
        let connection = try TestDatabase(migrated: false).connect()
        var sizes: [Int] = []
        var next = 1
        let total = try connection.forEachBatch(of: "select n from generate_series(1, \(2_500)) as n order by n", batchSize: 1_000) { batch in
            sizes.append(batch.rowCount)
            for row in batch.rows {
                let n = try row.decode(Int.self, "n")
                #expect(n == next)
                next += 1
            }
        }
        #expect(total == 2_500 && next == 2_501)
        #expect(sizes == [100, 1_000, 1_000, 400])
        #expect(!connection.isInTransaction)  // its own transaction is over
        // In the caller's transaction: it sees that transaction's writes and leaves it open.
        try connection.transaction { connection in
            try connection.execute("create temporary table streamed (n int)")
            try connection.execute("insert into streamed select generate_series(1, 5)")
            var batches: [Int] = []
            #expect(try connection.forEachBatch(of: "select n from streamed", batchSize: 2) { batches.append($0.rowCount) } == 5)
            #expect(batches == [2, 2, 1])
            #expect(connection.isInTransaction)
        }
    }

    @Test func copyLoadsTenThousandRowsAndReportsABadRow() throws {
        let connection = try TestDatabase(migrated: false).connect()
        try connection.runScript("create table people (n int not null, name text)")
        let rows = (1...10_000).map { [String($0), $0 % 7 == 0 ? nil : "name\t\($0)\nünï\\"] as [String?] }
        let loaded = try connection.copyIn("copy people (n, name) from stdin", rows: rows)
        #expect(loaded == 10_000)
        #expect(try connection.query("select count(*) as n, count(name) as named from people").first?.decode(Int.self, "n") == 10_000)
        #expect(try connection.query("select name from people where n = 2").first?.decode(String.self, "name") == "name\t2\nünï\\")

        let bad: [[String?]] = [["1", "ok"], ["2", "ok"], ["three", "bad"], ["4", "ok"]]
        let error = #expect(throws: PostgresError.self) {
            try connection.copyIn("copy people (n, name) from stdin", rows: bad)
        }
        #expect(error?.sqlState == "22P02")
        #expect(error?.message.contains("three") == true)
        #expect(error?.context?.contains("line 3") == true)
        // The failed COPY kept nothing, and the connection still works.
        #expect(try connection.query("select count(*) as n from people").first?.decode(Int.self, "n") == 10_000)
    }

    @Test func refusedConnectionNamesHostAndPortButNotThePassword() throws {
        let port = try LocalCluster.freeLoopbackPort()
        let error = #expect(throws: PostgresError.self) {
            _ = try Connection(ConnectionConfiguration("postgresql://someone:sekret-pw@127.0.0.1:\(port)/db", connectTimeout: 2))
        }
        #expect(error?.kind == .connection)
        #expect(error?.isRetryable == true)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("sekret-pw") == false)
    }

    @Test func connectionSurvivesAServerRestart() throws {
        let home = NSTemporaryDirectory() + "inmailq-restart-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let cluster = LocalCluster(home: home, durable: false)
        try cluster.start()
        try cluster.stopAndRemoveWhenProcessExits(getpid())
        let connection = try Connection(ConnectionConfiguration(try cluster.url()))
        let before = connection.backendPID
        #expect(try connection.query("select 1 as one").first?.decode(Int.self, "one") == 1)

        try cluster.stop()
        try cluster.start()

        // The first use after the restart may fail (the old socket is dead) but says so as a
        // retryable connection error; a later use reconnects by itself.
        var answer: Int?
        for _ in 0..<5 where answer == nil {
            do {
                answer = try connection.query("select 2 as two", prepared: true).first?.decode(Int.self, "two")
            } catch {
                #expect(error.isRetryable, "unexpected error after restart: \(error)")
            }
        }
        #expect(answer == 2)
        #expect(connection.backendPID != before)
        try cluster.stop()
    }
}

@Suite("Secrets in connection errors")
struct ConnectionSecretTests {
    static let password = "S3cretpass"
    static let badStrings = [
        "postgresql://inmailq:S3cret%zzpass@[::1/inmailq",
        "postgresql://inmailq:S3cretpass@[::1/inmailq",
        "host=127.0.0.1 password=S3cretpass port=notaport",
        "host=127.0.0.1 password='S3cretpass' sslmode=bogus",
        "postgresql://u:S3cretpass@127.0.0.1:1/db?sslmode=bogus",
        "postgresql://u@127.0.0.1:1/db?password=S3cretpass&port=notaport",
        "postgresql://u:S3cretpass@127.0.0.1:1/db",
    ]

    @Test func noErrorOfABadConnectionStringShowsItsPassword() throws {
        for text in Self.badStrings {
            let configuration = ConnectionConfiguration(text, connectTimeout: 2)
            let connecting = #expect(throws: PostgresError.self) { _ = try Connection(configuration) }
            #expect(connecting.map { !$0.description.contains("S3cret") && !$0.description.contains("pass@") } == true, "\(text): \(connecting?.description ?? "")")
            #expect(connecting?.description.contains("cannot connect to PostgreSQL") == true)
            if let parsing = try? configuration.withDatabase("other") {
                _ = parsing  // a string libpq can parse has nothing to leak here
            } else {
                let failure = #expect(throws: PostgresError.self) { _ = try configuration.withDatabase("other") }
                #expect(failure.map { !$0.description.contains("S3cret") } == true, "\(text): \(failure?.description ?? "")")
            }
        }
    }

    @Test func aStringThatIsNeitherURLNorConninfoIsRefusedInsteadOfTryingTheDefaultServer() throws {
        // libpq would read "garbage" as a database name on the default socket (issue 13).
        let refused = #expect(throws: PostgresError.self) { _ = try Connection(ConnectionConfiguration("S3cretpass")) }
        #expect(refused?.kind == .usage)
        #expect(refused.map { $0.message.contains("neither a postgresql:// URL nor a key=value conninfo") && !$0.description.contains("S3cret") } == true)
        let run = try InmailqProcess.run(["jobs", "list", "--database-url", "garbage"])
        #expect(run.status == 1 && run.output.contains("neither a postgresql:// URL nor a key=value conninfo"), "\(run.output)")
        #expect(!run.output.contains("/var/run/postgresql"), "\(run.output)")
    }

    @Test func theCommandLineNeverPrintsThePasswordOfABadDatabaseURL() throws {
        for text in Self.badStrings.prefix(3) {
            let run = try InmailqProcess.run(["jobs", "--database-url", text])
            #expect(run.status != 0)
            #expect(!run.output.contains("S3cret"), "\(text): \(run.output)")
            #expect(run.output.contains("Error:"), "\(run.output)")
        }
    }
}
