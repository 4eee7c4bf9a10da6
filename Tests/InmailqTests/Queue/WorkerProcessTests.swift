import EmbeddedPostgres
import Foundation
import InMail
import Postgres
import Queue
import Testing

/// Real `inmailq worker` OS processes sharing one database.
@Suite("Worker processes")
struct WorkerProcessTests {
    func count(_ sql: SQL, _ connection: Connection) throws -> Int {
        try connection.query(sql).first!.decode(Int.self, at: 0)
    }

    func worker(_ db: TestDatabase, _ extra: [String]) throws -> InmailqProcess {
        try InmailqProcess.start(["worker", "--database-url", db.url, "--log-level", "warning"] + extra)
    }

    func stop(_ process: InmailqProcess) {
        if process.child.exitStatusIfEnded() == nil {
            process.child.signal(SIGKILL)
            process.child.wait()
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func fourProcessesOfEightDrainFiveThousandJobsEachExactlyOnce() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try connection.runScript("create table diag_runs (job_id bigint primary key, worker_id text not null, attempt int not null)")
        let args = JSONText("{\"table\": \"diag_runs\"}")
        try JobQueue.enqueue(Array(repeating: NewJob(kind: "diag.record", args: args, maxAttempts: 3), count: 5_000), on: connection)
        let workers = try (0..<4).map { _ in try worker(db, ["--concurrency", "8", "--kinds", "diag.record", "--exit-when-done"]) }
        defer { workers.forEach(stop) }
        for process in workers {
            let status = process.wait(timeout: .seconds(150))
            #expect(status == 0, "worker output: \(process.output.suffix(2000))")
        }
        #expect(try count("select count(*) from diag_runs", connection) == 5_000)
        #expect(try count("select count(*) from all_jobs where state = 'completed' and attempt = 1 and errors = '[]'", connection) == 5_000)
        // The work was shared: more than one process ran jobs.
        #expect(try count("select count(distinct worker_id) from diag_runs", connection) > 1)
    }

    @Test(.timeLimit(.minutes(2)))
    func jobsOfAKilledWorkerFinishElsewhereAfterTheirLeaseExpires() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try JobQueue.enqueue(Array(repeating: NewJob(kind: "diag.sleep", args: JSONText("{\"ms\": 1500}")), count: 12), on: connection)
        let doomed = try worker(db, ["--concurrency", "8", "--lease", "2"])
        defer { stop(doomed) }
        let held = try eventually(timeout: .seconds(20)) {
            try count("select count(*) from jobs where state = 'running'", connection) == 8
        }
        #expect(held, "the first worker never held 8 jobs: \(doomed.output.suffix(2000))")
        let heldIDs = try connection.query("select id from jobs where state = 'running'").rows.map { try $0.decode(Int64.self, "id") }
        doomed.child.signal(SIGKILL)
        #expect(doomed.child.wait() == 128 + SIGKILL)

        let rescuer = try worker(db, ["--concurrency", "8", "--lease", "2", "--exit-when-done"])
        defer { stop(rescuer) }
        #expect(rescuer.wait(timeout: .seconds(60)) == 0, "rescuer output: \(rescuer.output.suffix(2000))")
        #expect(try count("select count(*) from all_jobs where state = 'completed'", connection) == 12)
        // Each job the killed worker held ran again with its lost attempt counted and explained.
        let rescued = try count(
            """
            select count(*) from all_jobs
            where id = any(\(heldIDs)::bigint[]) and attempt = 2
              and errors @> '[{"action": "rescue"}]'
            """, connection)
        #expect(rescued == heldIDs.count)
    }

    @Test(.timeLimit(.minutes(2)))
    func sigtermLetsRunningJobsFinishAndExitsZero() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        // Six jobs fill the worker; the six after them are enqueued once those run, just before
        // the signal, so however late a loaded machine lets this test look, no second round of
        // jobs can have started (a round takes 10 s).
        let sixJobs = Array(repeating: NewJob(kind: "diag.sleep", args: JSONText("{\"ms\": 10000}")), count: 6)
        let running = try JobQueue.enqueue(sixJobs, on: connection).compactMap { $0 }
        let process = try worker(db, ["--concurrency", "6", "--shutdown-deadline", "20"])
        defer { stop(process) }
        let busy = try eventually(timeout: .seconds(20)) { try count("select count(*) from jobs where state = 'running'", connection) == 6 }
        #expect(busy)
        let waiting = try JobQueue.enqueue(sixJobs, on: connection).compactMap { $0 }
        process.child.signal(SIGTERM)
        #expect(process.wait(timeout: .seconds(30)) == 0, "output: \(process.output.suffix(2000))")
        #expect(try count("select count(*) from jobs where state = 'running'", connection) == 0)
        #expect(try count("select count(*) from all_jobs where id = any(\(running)::bigint[]) and state = 'completed' and attempt = 1", connection) == 6)
        // The six it never started are still there for other workers, no attempt spent.
        #expect(try count("select count(*) from jobs where id = any(\(waiting)::bigint[]) and state = 'available' and attempt = 0", connection) == 6)
    }

    /// A claim still under way when SIGTERM arrives hands its jobs back at once, rather than
    /// leaving them 'running' under a lease nobody renews (they would wait for it to expire).
    @Test(.timeLimit(.minutes(2)))
    func jobsOfAClaimUnderWayAtSigtermAreReleasedNotLeftRunning() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let observer = try db.connect()
        let first = try #require(try JobQueue.enqueue([NewJob(kind: "diag.sleep", args: JSONText("{\"ms\": 4000}"))], on: connection)[0])
        let process = try worker(db, ["--concurrency", "2", "--poll-interval", "0.2", "--shutdown-deadline", "20"])
        defer { stop(process) }
        #expect(try eventually(timeout: .seconds(20)) { try count("select count(*) from jobs where state = 'running'", connection) == 1 })
        // The table locked, the next job enqueued behind the lock: the worker's next claim waits for it.
        let second = try connection.transaction { tx -> Int64 in
            try tx.execute("lock table jobs in exclusive mode")
            let second = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: tx)[0])
            let waiting = try eventually(timeout: .seconds(10)) {
                try count(
                    """
                    select count(*) from pg_stat_activity
                    where application_name = 'inmailq-producer' and wait_event_type = 'Lock'
                    """, observer) == 1
            }
            #expect(waiting, "the worker's claim never waited for the lock: \(process.output.suffix(2000))")
            process.child.signal(SIGTERM)
            Thread.sleep(forTimeInterval: 0.5)  // the first job still runs: the worker waits for it
            return second
        }  // the commit lets the claim go on, after shutdown began
        #expect(process.wait(timeout: .seconds(30)) == 0, "output: \(process.output.suffix(2000))")
        #expect(try count("select count(*) from all_jobs where id = \(first) and state = 'completed' and attempt = 1", connection) == 1)
        let states = try connection.query("select format('%s attempt %s owner %s', state, attempt, lease_owner) as s from jobs").rows
            .map { try $0.decode(String.self, "s") }
        #expect(try count("select count(*) from jobs where id = \(second) and state = 'available' and attempt = 0 and lease_owner is null", connection) == 1,
                "jobs: \(states)")
    }

    @Test(.timeLimit(.minutes(2)))
    func jobsThatMissTheShutdownDeadlineAreReleasedToOthers() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try JobQueue.enqueue(Array(repeating: NewJob(kind: "diag.sleep", args: JSONText("{\"ms\": 60000}")), count: 2), on: connection)
        let process = try worker(db, ["--concurrency", "2", "--shutdown-deadline", "0.5"])
        defer { stop(process) }
        #expect(try eventually(timeout: .seconds(20)) { try count("select count(*) from jobs where state = 'running'", connection) == 2 })
        process.child.signal(SIGTERM)
        #expect(process.wait(timeout: .seconds(20)) == 0, "output: \(process.output.suffix(2000))")
        #expect(try count("select count(*) from jobs where state = 'available' and attempt = 0 and lease_owner is null", connection) == 2)
    }

    @Test(.timeLimit(.minutes(2)))
    func aSecondSignalReleasesRunningJobsAtOnceInsteadOfWaitingForTheDeadline() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try JobQueue.enqueue(Array(repeating: NewJob(kind: "diag.sleep", args: JSONText("{\"ms\": 60000}")), count: 2), on: connection)
        let process = try worker(db, ["--concurrency", "2", "--shutdown-deadline", "60"])
        defer { stop(process) }
        #expect(try eventually(timeout: .seconds(20)) { try count("select count(*) from jobs where state = 'running'", connection) == 2 })
        process.child.signal(SIGTERM)  // graceful shutdown: it would wait up to 60 s for the jobs
        Thread.sleep(forTimeInterval: 0.5)
        #expect(process.child.exitStatusIfEnded() == nil)
        process.child.signal(SIGINT)  // cancellation: release them now
        #expect(process.wait(timeout: .seconds(10)) == 0, "output: \(process.output.suffix(2000))")
        let states = try connection.query("select format('%s attempt %s', state, attempt) as s from jobs").rows.map { try $0.decode(String.self, "s") }
        #expect(try count("select count(*) from jobs where state = 'available' and attempt = 0 and lease_owner is null", connection) == 2, "jobs: \(states)")
    }

    @Test(.timeLimit(.minutes(2)))
    func idleWorkerIsWokenByNotifyNotByItsPollInterval() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let process = try worker(db, ["--concurrency", "2", "--poll-interval", "60"])
        defer { stop(process) }
        // A first job proves the worker is up; afterwards it sleeps on LISTEN with a 60 s poll.
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        #expect(try eventually(timeout: .seconds(30)) { try count("select count(*) from all_jobs where state = 'completed'", connection) == 1 })
        Thread.sleep(forTimeInterval: 0.3)

        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)[0])
        let woken = try eventually(timeout: .seconds(10), every: 0.01) {
            try count("select count(*) from all_jobs where id = \(id) and state = 'completed'", connection) == 1
        }
        #expect(woken, "the idle worker did not pick the job up well before its 60 s poll")
        let latency = try connection.query("select extract(epoch from attempted_at - created_at)::float8 as s from all_jobs where id = \(id)").first!.decode(Double.self, "s")
        #expect(latency < 5)
    }

    /// The worker whose leadership term in queue_leader runs, as its pid; nil when none.
    func leaderPID(_ connection: Connection) throws -> Int32? {
        try connection.query("select worker_id from queue_leader where expires_at > clock_timestamp()").rows.first
            .flatMap { Int32(try $0.decode(String.self, "worker_id").split(separator: ":").last ?? "") }
    }

    @Test(.timeLimit(.minutes(2)))
    func maintenanceMovesToAnotherWorkerWhenTheElectedOneDies() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let first = try worker(db, ["--concurrency", "2", "--lease", "4"])
        defer { stop(first) }
        #expect(try eventually(timeout: .seconds(20)) { try leaderPID(connection) == first.child.pid })
        let second = try worker(db, ["--concurrency", "2", "--lease", "4"])
        defer { stop(second) }
        #expect(try eventually(timeout: .seconds(20)) {
            try count("select count(*) from pg_stat_activity where application_name = 'inmailq-maintenance' and datname = current_database()", connection) == 2
        })
        first.child.signal(SIGKILL)
        first.child.wait()
        // Only an elected worker promotes scheduled jobs: this one runs once the second takes over.
        let soon = try QueueClock.now(on: connection).addingTimeInterval(1)
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop", runAt: soon)], on: connection)[0])
        #expect(try eventually(timeout: .seconds(30)) {
            try count("select count(*) from all_jobs where id = \(id) and state = 'completed'", connection) == 1
        }, "second worker: \(second.output.suffix(2000))")
        #expect(try leaderPID(connection) == second.child.pid)
    }

    @Test(.timeLimit(.minutes(2)))
    func aStoppedLeaderIsReplacedWithinTwoLeasePeriodsAndDoesNothingWhenItWakes() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let workers = try (0..<2).map { _ in
            try InmailqProcess.start(["worker", "--database-url", db.url, "--concurrency", "2", "--lease", "2", "--log-level", "info"])
        }
        defer { workers.forEach { $0.child.signal(SIGCONT); stop($0) } }
        var leader: Int32?
        #expect(try eventually(timeout: .seconds(20)) {
            leader = try leaderPID(connection)
            return leader != nil
        })
        let stopped = try #require(workers.first { $0.child.pid == leader })
        let other = try #require(workers.first { $0.child.pid != leader })
        // A job the leader holds when it stops: its lease must be rescued by the new leader.
        stopped.child.signal(SIGSTOP)
        let stoppedAt = ContinuousClock.now
        #expect(try eventually(timeout: .seconds(4), every: 0.05) { try leaderPID(connection) == other.child.pid })
        #expect(ContinuousClock.now - stoppedAt < .seconds(4))  // two lease periods
        // The new leader promotes due work.
        let soon = try QueueClock.now(on: connection).addingTimeInterval(0.5)
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop", runAt: soon)], on: connection)[0])
        #expect(try eventually(timeout: .seconds(10)) {
            try count("select count(*) from all_jobs where id = \(id) and state = 'completed'", connection) == 1
        })
        // Woken, the old leader finds another in charge and stands down.
        stopped.child.signal(SIGCONT)
        #expect(try eventually(timeout: .seconds(10)) { stopped.output.contains("no longer the maintenance leader") }, "\(stopped.output.suffix(1500))")
        #expect(try leaderPID(connection) == other.child.pid)
    }

    @Test func jobsCommandsCountShowAndCancel() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let ids = try JobQueue.enqueue([NewJob(kind: "diag.noop", runAt: Date().addingTimeInterval(3600)), NewJob(kind: "diag.sleep")], on: connection)
        let counts = try InmailqProcess.run(["jobs", "list", "--database-url", db.url])
        #expect(counts.status == 0)
        #expect(counts.output.contains("diag.noop\tscheduled\t1"))
        #expect(counts.output.contains("diag.sleep\tavailable\t1"))
        let cancelled = try InmailqProcess.run(["jobs", "cancel", "\(ids[0]!)", "--reason", "client asked", "--database-url", db.url])
        #expect(cancelled.status == 0, "\(cancelled.output)")
        let shown = try InmailqProcess.run(["jobs", "show", "\(ids[0]!)", "--database-url", db.url])
        #expect(shown.output.contains("\"cancelled\""))
        #expect(shown.output.contains("client asked"))
        let unknown = try InmailqProcess.run(["jobs", "cancel", "99999", "--database-url", db.url])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("no job with id 99999"))
    }

    @Test func wrongArgumentsExitNonZeroWithAClearMessage() throws {
        let bad = try InmailqProcess.run(["worker", "--concurrency", "0"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("--concurrency must be between 1 and 4096"))
        let unknownKind = try InmailqProcess.run(["worker", "--kinds", "no.such.kind", "--database-url", try TestDatabase().url])
        #expect(unknownKind.status != 0)
        #expect(unknownKind.output.contains("no handler for job kind(s) no.such.kind"))
        let help = try InmailqProcess.run(["--help"])
        #expect(help.status == 0)
        for command in ["db", "migrate", "worker", "enqueue", "jobs", "renewals", "clock", "bench"] {
            #expect(help.output.contains(command))
        }
    }
}

/// A worker outlives a restart of its PostgreSQL server (its own private cluster here).
@Suite("Worker and server restart")
struct WorkerRestartTests {
    @Test(.timeLimit(.minutes(2)))
    func aWorkerKeepsWorkingAfterTheServerRestarts() throws {
        let home = NSTemporaryDirectory() + "inmailq-worker-restart-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let cluster = LocalCluster(home: home, durable: false)
        try cluster.start()
        try cluster.stopAndRemoveWhenProcessExits(getpid())
        let url = try cluster.url()
        let connection = try Connection(ConnectionConfiguration(url))
        try InMailSchema.migrator(sqlDirectory: TestPaths.sql, sandbox: true).migrate(connection)
        let worker = try InmailqProcess.start(["worker", "--database-url", url, "--concurrency", "2", "--poll-interval", "0.2", "--log-level", "warning"])
        defer {
            worker.child.signal(SIGKILL)
            worker.child.wait()
        }
        func completed(_ connection: Connection) throws -> Int {
            try connection.query("select count(*) as n from job_history where state = 'completed'").first!.decode(Int.self, "n")
        }
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        #expect(try eventually(timeout: .seconds(20)) { try completed(connection) == 1 })

        try cluster.stop()
        try cluster.start()
        let after = try Connection(ConnectionConfiguration(url))
        try JobQueue.enqueue([NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop")], on: after)
        #expect(try eventually(timeout: .seconds(30)) { try completed(after) == 3 }, "worker output: \(worker.output.suffix(2000))")
        #expect(worker.child.exitStatusIfEnded() == nil)  // the same process, never restarted
        try cluster.stop()
    }
}
