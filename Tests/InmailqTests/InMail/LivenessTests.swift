import Foundation
import InMail
import Postgres
import Queue
import Testing

/// A worker stopped inside its claim (SIGSTOP, a frozen VM, a cut network) holds its accounts'
/// locks until the server ends its session: nobody else's claim may wait on them.
@Suite("Liveness under a stuck claim")
struct LivenessTests {
    @Test func aClaimSkipsAccountsAnotherSessionHoldsAndDefersTheirSendsForAMoment() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let f = AccountFixture(connection: connection)
        let stuck = try f.account(dailyLimit: 10)
        let free = try f.account(dailyLimit: 10)
        for account in [stuck, free] { try f.renewCurrentCycle(account) }
        let jobs = try [stuck, free].flatMap { account in
            try (0..<3).map { try CreditDrill.job(.init(request: SendRequest(accountID: account, deliveryKey: "live-\(account)-\($0)", channel: .inmail, usesCredit: false))) }
        }
        try JobQueue.enqueue(jobs, on: connection)
        // Another worker's claim transaction holds the stuck account and goes quiet.
        let other = try db.connect()
        try other.execute("begin")
        try other.execute("select lock_account(\(stuck))")
        Thread.sleep(forTimeInterval: 1.2)  // quiet for over a second: stuck, not a claim under way

        let guards: [String: any ClaimGuard] = [CreditDrill.kind: SendReservationGuard()]
        let started = ContinuousClock.now
        let claim = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(ContinuousClock.now - started < .seconds(2))  // it did not wait for the lock
        let admitted = try claim.admitted.map { try $0.args.decode(CreditDrill.Args.self).request.accountID }
        #expect(admitted == [free, free, free])
        // The stuck account's sends wait a moment (scheduled, nothing spent), then go once it is free.
        #expect(try count("select count(*) from jobs where partition_key = \(String(stuck)) and state = 'scheduled' and attempt = 0", connection) == 3)
        #expect(try count("select count(*) from reservations where account_id = \(stuck)", connection) == 0)
        try other.execute("rollback")
        try QueueClock.advance(by: .seconds(20), on: connection)
        try QueueMaintenance.promoteDueJobs(on: connection)
        let later = try JobQueue.claimAdmitted(kinds: [CreditDrill.kind], guards: guards, limit: 10, owner: "w", lease: .seconds(30), on: connection)
        #expect(try later.admitted.map { try $0.args.decode(CreditDrill.Args.self).request.accountID } == [stuck, stuck, stuck])
    }

    @Test(.timeLimit(.minutes(2)))
    func workersKeepDrainingOtherAccountsWhileAStoppedClaimHoldsSome() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let f = AccountFixture(connection: connection)
        let workspace = try f.workspace()
        let accounts = try (0..<10).map { _ in try f.account(workspace: workspace, dailyLimit: 100) }
        let held = Array(accounts.prefix(5))
        let jobs = try accounts.flatMap { account in
            try (0..<20).map { try CreditDrill.job(.init(request: SendRequest(accountID: account, deliveryKey: "drain-\(account)-\($0)", channel: .inmail, usesCredit: false))) }
        }
        try JobQueue.enqueue(jobs.shuffled(), on: connection)
        let other = try db.connect()
        try other.execute("begin")
        for account in held { try other.execute("select lock_account(\(account))") }
        Thread.sleep(forTimeInterval: 1.2)
        let workers = try (0..<2).map { _ in
            try InmailqProcess.start(["worker", "--database-url", db.url, "--concurrency", "8", "--kinds", CreditDrill.kind, "--log-level", "warning"])
        }
        defer {
            for worker in workers where worker.child.exitStatusIfEnded() == nil {
                worker.child.signal(SIGKILL)
                worker.child.wait()
            }
        }
        // Every send of the accounts nobody holds completes while the others are held.
        let others = accounts.dropFirst(5).map(String.init)
        #expect(try eventually(timeout: .seconds(30)) {
            try count("select count(*) from job_history where state = 'completed' and partition_key = any(\(Array(others))::text[])", connection) == 100
        }, "left: \((try? left(connection, others)) ?? []) workers: \(workers.map { $0.output.suffix(1000) })")
        #expect(try count("select count(*) from job_history where partition_key = any(\(held.map(String.init))::text[])", connection) == 0)
        try other.execute("rollback")
        try QueueClock.advance(by: .seconds(20), on: connection)  // past their deferral
        #expect(try eventually(timeout: .seconds(30)) {
            try count("select count(*) from job_history where state = 'completed'", connection) == 200
        }, "left: \((try? left(connection, accounts.map(String.init))) ?? [])")
    }

    @Test func workerSessionsBoundLockWaitsAndIdleTransactions() throws {
        var settings = try TestDatabase().configuration
        settings.sessionSettings = WorkerConfiguration.sessionSettings
        let connection = try Connection(settings)
        #expect(try connection.queryOne("select current_setting('lock_timeout') as v").decode(String.self, "v") == "5s")
        #expect(try connection.queryOne("select current_setting('idle_in_transaction_session_timeout') as v").decode(String.self, "v") == "30s")
    }

    /// The unfinished jobs of `partitions`, counted by state and whether they wait for later.
    func left(_ connection: Connection, _ partitions: [String]) throws -> [String] {
        try connection.query(
            """
            select format('%s %s later=%s', count(*), state, run_at > clock_now()) as s from jobs
            where partition_key = any(\(partitions)::text[]) group by state, run_at > clock_now()
            """).rows.map { try $0.decode(String.self, "s") }
    }
}
