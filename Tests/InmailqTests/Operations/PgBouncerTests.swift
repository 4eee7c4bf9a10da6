import Foundation
import InMail
import Postgres
import Queue
import Testing

/// Workers, the CLI and a send run through a real PgBouncer in transaction pooling mode, the
/// producer's LISTEN on a direct session; every job runs once and every invariant holds.
@Suite("Through PgBouncer")
struct PgBouncerTests {
    /// The settings a login needs when its sessions come through a transaction pooler.
    static func prepare(_ login: String) throws {
        let admin = try Connection(try TestServer.admin.get())
        for (name, value) in [("datestyle", "ISO"), ("timezone", "UTC"), ("intervalstyle", "iso_8601"),
                              ("lock_timeout", "5s"), ("idle_in_transaction_session_timeout", "30s")] {
            try admin.runScript("alter role \(quoteIdentifier(login)) set \(name) = '\(value)'")
        }
    }

    /// The workers' login, prepared for the pooler, a PgBouncer of `poolSize` server sessions in
    /// front of the test server, and a new database.
    static func pooledDatabase(poolSize: Int) throws -> (login: String, bouncer: PgBouncerProcess, db: TestDatabase) {
        let login = try TestRoles.login(.worker)
        try prepare(login)
        return (login, try PgBouncerProcess(logins: [login], poolSize: poolSize), try TestDatabase())
    }

    /// Two worker processes whose sessions go through `bouncer`, each producer's directly.
    static func startWorkers(_ db: TestDatabase, through bouncer: PgBouncerProcess, as login: String, _ extra: [String]) throws -> [InmailqProcess] {
        try (0..<2).map { _ in
            try InmailqProcess.start(
                ["worker", "--database-url", bouncer.url(db, as: login), "--pool-mode", "transaction",
                 "--direct-database-url", TestRoles.url(db, as: login), "--log-level", "warning"] + extra)
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func twoWorkerProcessesDrainThroughFiveServerSessionsEachJobOnce() throws {
        let (worker, bouncer, db) = try Self.pooledDatabase(poolSize: 5)
        let connection = try db.connect()
        try connection.execute("create table diag_runs (job_id bigint primary key, worker_id text not null, attempt int not null)")
        try connection.execute("grant select, insert on diag_runs to inmailq_worker")
        try JobQueue.enqueue((0..<3_000).map { _ in NewJob(kind: "diag.record", args: JSONText(#"{"table": "diag_runs"}"#)) }, on: connection)
        let workers = try Self.startWorkers(db, through: bouncer, as: worker, ["--kinds", "diag.record,diag.noop", "--concurrency", "16"])
        defer { for process in workers { process.stop() } }
        #expect(try waitUntilQuiet(connection, workers: workers), "\(workers.map { $0.output.suffix(1500) })")
        #expect(try count("select count(*) from diag_runs", connection) == 3_000)
        #expect(try count("select count(*) from job_history where state = 'completed'", connection) == 3_000)
        // Both processes worked, on at most the pool's five server sessions plus each one's direct one.
        #expect(try count("select count(distinct worker_id) from diag_runs", connection) == 2)
        let sessions = try count("select count(*) from pg_stat_activity where datname = current_database() and usename = \(worker)", connection)
        #expect(sessions <= 5 + 2, "\(sessions) server sessions")
        // A job enqueued now wakes a worker through the direct session's LISTEN, not a poll.
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        #expect(try eventually(timeout: .seconds(5)) { try count("select count(*) from jobs", connection) == 0 })
        // The operators' CLI works through the pooler too; migrate refuses it (a session lock).
        let listed = try InmailqProcess.run(["jobs", "list", "--database-url", bouncer.url(db, as: worker), "--pool-mode", "transaction"])
        #expect(listed.status == 0, "\(listed.output)")
        let migrate = try InmailqProcess.run(["migrate", "--database-url", bouncer.url(db, as: worker), "--pool-mode", "transaction"])
        #expect(migrate.status != 0)
        #expect(migrate.output.contains("not a transaction pooler's"))
        for process in workers {
            process.child.signal(SIGTERM)
            #expect(process.wait(timeout: .seconds(30)) == 0)
        }
    }

    /// S6 and S4 through the pooler: two accounts, sixty contacts, a daily limit of twenty each.
    @Test(.timeLimit(.minutes(3)))
    func aSendRunThroughThePoolerKeepsEveryLimitAndSendsEachMessageOnce() throws {
        let (worker, bouncer, db) = try Self.pooledDatabase(poolSize: 4)
        let connection = try db.connect()
        try connection.execute("update sandbox_settings set perfect = true, latency_ms = 0")
        let f = AccountFixture(connection: connection)
        let workspace = try f.workspace()
        let senders = try (0..<2).map { _ in try f.account(plan: "sales_navigator", workspace: workspace, dailyLimit: 20) }
        for sender in senders { try f.renewCurrentCycle(sender) }
        let campaign = try Campaigns.create(workspace: workspace, name: "Pooled", on: connection)
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hi", body: "A question", delayDays: nil, on: connection)
        for sender in senders { try Campaigns.addSender(campaign: campaign, account: sender, on: connection) }
        _ = try Contacts.add(campaign: campaign, links: (0..<60).map { (line: $0 + 1, text: "https://www.linkedin.com/in/pooled-\($0)") }, on: connection)
        try Campaigns.activate(campaign: campaign, on: connection)
        let workers = try Self.startWorkers(db, through: bouncer, as: worker, ["--concurrency", "8"])
        defer { for process in workers { process.stop() } }
        #expect(try waitUntilQuiet(connection, workers: workers), "\(workers.map { $0.output.suffix(1500) })")
        // Up to forty sent today (each sender's share of the contacts decides), the rest waiting
        // for tomorrow; each delivered once, ledgers balanced.
        let sent = try count("select count(*) from messages where state = 'sent'", connection)
        #expect(sent >= 30 && sent <= 40)
        #expect(try count("select count(*) from sandbox_messages where receipt is not null", connection) == sent)
        #expect(try count("select count(*) from all_jobs where kind = 'inmail.send' and state = 'scheduled'", connection) == 60 - sent)
        #expect(try count("select count(*) from all_jobs where kind = 'inmail.send' and state = 'completed'", connection) == sent)
        #expect(try accountsOverADailyLimit(connection) == 0)
        #expect(try accountsWithUnbalancedLedgers(connection) == 0)
        #expect(try count("select count(*) from (select member_key from messages group by 1 having count(*) > 1) d", connection) == 0)
    }
}
