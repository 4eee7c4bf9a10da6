import Foundation
import Logging
import Postgres
import Queue
import Synchronization
import Testing

@Suite("Job queue engine")
struct JobQueueTests {
    let owner = "test-worker"

    func state(of id: Int64, on connection: Connection) throws -> (state: JobState, attempt: Int, errors: Int) {
        let row = try #require(try connection.query("select state, attempt, jsonb_array_length(errors) as errors from all_jobs where id = \(id)").first)
        return (try row.decode(JobState.self, "state"), try row.decode(Int.self, "attempt"), try row.decode(Int.self, "errors"))
    }

    /// A worker running `handlers` on the test database until no unfinished job is left.
    func workerUntilDone(_ db: TestDatabase, _ handlers: JobHandlers, id: String, concurrency: Int) throws -> Worker {
        var configuration = WorkerConfiguration(database: db.configuration, workerID: id)
        configuration.concurrency = concurrency
        configuration.exitWhenDone = true
        return try Worker(configuration: configuration, handlers: handlers, pool: ConnectionPool(db.configuration, capacity: configuration.sessions),
                          logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// A kind registered with a batch size gets several waiting jobs per call (never more than
    /// the size), and each job's result is its own: one failing job of a batch fails alone.
    @Test func aBatchHandlerGetsSeveralJobsAndEachJobKeepsItsOwnOutcome() async throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let ids = try JobQueue.enqueue(
            (0..<60).map { NewJob(kind: "test.batch", args: try JSONText(encoding: ["n": $0]), maxAttempts: 1) }, on: connection)
        struct Refused: Error {}
        let batchSizes = Mutex<[Int]>([])
        var handlers = JobHandlers()
        handlers.register("test.batch", batchSize: 16) { jobs, _ in
            batchSizes.withLock { $0.append(jobs.count) }
            return try jobs.map { job in
                try job.args.decode([String: Int].self)["n"]! % 10 == 3 ? .failure(Refused()) : .success(.completed)
            }
        }
        try await workerUntilDone(db, handlers, id: "batch-test", concurrency: 32).run()
        let sizes = batchSizes.withLock { $0 }
        #expect(sizes.reduce(0, +) == 60)
        #expect(sizes.max()! > 1 && sizes.max()! <= 16)
        for (n, id) in ids.enumerated() {
            #expect(try state(of: id!, on: connection).state == (n % 10 == 3 ? .discarded : .completed))
        }
    }

    /// While a batch runs, the worker claims the next batch ahead (its reservations and leases
    /// taken), so that it starts as soon as the first ends; never more than `concurrency` run.
    @Test func whileABatchRunsTheNextIsClaimedAheadButNoMoreThanConcurrencyRun() async throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try JobQueue.enqueue((0..<40).map { _ in NewJob(kind: "test.batch") }, on: connection)
        let firstBatchMayEnd = DispatchSemaphore(value: 0)
        let running = Mutex((now: 0, most: 0, batches: 0))
        var handlers = JobHandlers()
        handlers.register("test.batch", batchSize: 8) { jobs, _ in
            let batch = running.withLock { counts -> Int in
                counts.now += jobs.count
                counts.most = max(counts.most, counts.now)
                counts.batches += 1
                return counts.batches
            }
            if batch == 1 { firstBatchMayEnd.wait() }
            running.withLock { $0.now -= jobs.count }
            return jobs.map { _ in .success(.completed) }
        }
        let worker = Task { try await workerUntilDone(db, handlers, id: "claim-ahead-test", concurrency: 8).run() }
        // The first batch holds its 8 slots; 8 more jobs are claimed ahead of them, and no more.
        // (Polled without blocking a thread of Swift's cooperative pool, which the worker's task needs.)
        var claimedAhead = false
        for _ in 0..<400 where !claimedAhead {
            claimedAhead = try InmailqTests.count("select count(*) from jobs where state = 'running'", connection) == 16
            if !claimedAhead { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(claimedAhead)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try InmailqTests.count("select count(*) from jobs where state = 'running'", connection) == 16)
        #expect(running.withLock { $0.batches } == 1)  // the claimed-ahead batch waits for a slot
        firstBatchMayEnd.signal()
        try await worker.value
        #expect(try InmailqTests.count("select count(*) from all_jobs where state = 'completed'", connection) == 40)
        #expect(running.withLock { $0.most } == 8)
    }

    @Test func enqueueManyInOneStatementReturnsIdsInOrder() throws {
        let connection = try TestDatabase().connect()
        let ids = try JobQueue.enqueue((0..<50).map { NewJob(kind: "diag.noop", args: JSONText("{\"n\": \($0)}")) }, on: connection)
        #expect(ids.count == 50)
        let stored = try connection.query("select id, (args->>'n')::int as n from jobs order by id").rows
        for (index, row) in stored.enumerated() {
            #expect(try row.decode(Int64.self, "id") == ids[index])
            #expect(try row.decode(Int.self, "n") == index)
        }
    }

    @Test func uniqueKeyMakesASecondEnqueueANoOpWhileTheFirstIsUnfinished() throws {
        let connection = try TestDatabase().connect()
        let first = try JobQueue.enqueue([NewJob(kind: "diag.noop", uniqueKey: "renewal:42:2026-11")], on: connection)
        let again = try JobQueue.enqueue(
            [NewJob(kind: "diag.noop", uniqueKey: "renewal:42:2026-11"), NewJob(kind: "diag.noop", uniqueKey: "other")], on: connection)
        #expect(first[0] != nil)
        #expect(again[0] == nil)
        #expect(again[1] != nil)
        // Twice in one statement: only the first is inserted.
        let same = try JobQueue.enqueue([NewJob(kind: "diag.noop", uniqueKey: "twin"), NewJob(kind: "diag.noop", uniqueKey: "twin")], on: connection)
        #expect(same[0] != nil && same[1] == nil)

        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 10, owner: owner, lease: .seconds(30), on: connection)
        try JobQueue.finish(claimed.map { ($0.lease, JobOutcome.completed) }, on: connection)
        // Finished, the key is free again.
        #expect(try JobQueue.enqueue([NewJob(kind: "diag.noop", uniqueKey: "renewal:42:2026-11")], on: connection)[0] != nil)
    }

    @Test func enqueueInsideTheCallersTransactionRollsBackWithIt() throws {
        struct Abort: Error {}
        let connection = try TestDatabase().connect()
        try connection.runScript("create table orders (id int primary key)")
        #expect(throws: Abort.self) {
            try connection.transaction { tx in
                try tx.execute("insert into orders values (1)")
                try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: tx)
                throw Abort()
            }
        }
        #expect(try connection.query("select count(*) as n from jobs").first?.decode(Int.self, "n") == 0)
    }

    @Test func scheduledJobDoesNotRunEarly() throws {
        let connection = try TestDatabase().connect()
        let now = try QueueClock.now(on: connection)
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop", runAt: now.addingTimeInterval(3600))], on: connection)[0])
        #expect(try state(of: id, on: connection).state == .scheduled)
        #expect(try QueueMaintenance.promoteDueJobs(on: connection) == 0)
        #expect(try JobQueue.claim(kinds: ["diag.noop"], limit: 10, owner: owner, lease: .seconds(30), on: connection).isEmpty)

        try QueueClock.advance(by: .seconds(3599), on: connection)
        #expect(try QueueMaintenance.promoteDueJobs(on: connection) == 0)
        try QueueClock.advance(by: .seconds(2), on: connection)
        #expect(try QueueMaintenance.promoteDueJobs(on: connection) == 1)
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 10, owner: owner, lease: .seconds(30), on: connection)
        #expect(claimed.map(\.id) == [id])
    }

    @Test func clockOnlyMovesForward() throws {
        let connection = try TestDatabase().connect()
        let error = #expect(throws: PostgresError.self) { try connection.execute("select clock_advance(interval '-1 hour')") }
        #expect(error?.sqlState == "22023")
    }

    @Test func failedJobIsRetriedWithBackoffThenDiscardedWithEveryError() throws {
        let connection = try TestDatabase().connect()
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.fail", maxAttempts: 3)], on: connection)[0])
        for attempt in 1...3 {
            let claimed = try JobQueue.claim(kinds: ["diag.fail"], limit: 1, owner: owner, lease: .seconds(30), on: connection)
            #expect(claimed.first?.attempt == attempt)
            try JobQueue.finish([(claimed[0].lease, .failed(error: "boom \(attempt)", retryIn: .seconds(600)))], on: connection)
            let after = try state(of: id, on: connection)
            if attempt < 3 {
                #expect(after.state == .retryable)
                // The backoff holds: not due yet, then due once the clock passes it.
                #expect(try QueueMaintenance.promoteDueJobs(on: connection) == 0)
                try QueueClock.advance(by: .seconds(601), on: connection)
                #expect(try QueueMaintenance.promoteDueJobs(on: connection) == 1)
            } else {
                #expect(after.state == .discarded)
            }
        }
        let errors = try connection.query("select jsonb_path_query_array(errors, '$[*].error') as e from all_jobs where id = \(id)").first!.decode(JSONText.self, "e")
        #expect(try errors.decode([String].self) == ["boom 1", "boom 2", "boom 3"])
        #expect(try connection.query("select finished_at is not null as done from all_jobs where id = \(id)").first?.decode(Bool.self, "done") == true)
    }

    @Test func snoozeRunsLaterWithoutSpendingAnAttempt() throws {
        let connection = try TestDatabase().connect()
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop", maxAttempts: 1)], on: connection)[0])
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: owner, lease: .seconds(30), on: connection)
        try JobQueue.finish([(claimed[0].lease, .snoozed(delay: .seconds(3600)))], on: connection)
        let snoozed = try state(of: id, on: connection)
        #expect(snoozed.state == .scheduled)
        #expect(snoozed.attempt == 0)
        try QueueClock.advance(by: .seconds(3601), on: connection)
        try QueueMaintenance.promoteDueJobs(on: connection)
        let again = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: owner, lease: .seconds(30), on: connection)
        // max_attempts is 1 and it still runs: the snooze spent nothing.
        #expect(again.first?.attempt == 1)
    }

    @Test func cancelStopsAWaitingJobButNotARunningOne() throws {
        let connection = try TestDatabase().connect()
        let ids = try JobQueue.enqueue([NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop", priority: 5)], on: connection)
        #expect(try JobQueue.cancel(id: ids[1]!, reason: "operator", on: connection) == .cancelled)
        #expect(try JobQueue.cancel(id: ids[1]!, reason: "operator", on: connection) == .alreadyCancelled)
        let running = try JobQueue.claim(kinds: ["diag.noop"], limit: 10, owner: owner, lease: .seconds(30), on: connection)
        #expect(running.map(\.id) == [ids[0]!])  // the cancelled one is never claimed
        #expect(try JobQueue.cancel(id: ids[0]!, reason: "operator", on: connection) == .notCancellable(.running))
        #expect(try JobQueue.cancel(id: 987_654, reason: "operator", on: connection) == nil)
    }

    @Test func claimHonoursPriorityAndTheConditionOfTheLayerAbove() throws {
        let connection = try TestDatabase().connect()
        try JobQueue.enqueue([
            NewJob(kind: "diag.noop", priority: 5, partitionKey: "open"),
            NewJob(kind: "diag.noop", priority: 0, partitionKey: "blocked"),
            NewJob(kind: "diag.noop", priority: 1, partitionKey: "open"),
            NewJob(kind: "diag.other", priority: -5, partitionKey: "open"),
        ], on: connection)
        let claimed = try JobQueue.claim(
            kinds: ["diag.noop"], limit: 10, owner: owner, lease: .seconds(30),
            where: "jobs.partition_key <> \("blocked")", on: connection)
        #expect(claimed.map(\.partitionKey) == ["open", "open"])
        #expect(try connection.query("select count(*) as n from jobs where state = 'available'").first?.decode(Int.self, "n") == 2)
    }

    @Test func expiredLeaseIsRescuedAndTheOldOwnerCannotFinishIt() throws {
        let connection = try TestDatabase().connect()
        let ids = try JobQueue.enqueue([NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop", maxAttempts: 1)], on: connection)
        let first = try JobQueue.claim(kinds: ["diag.noop"], limit: 2, owner: "dead-worker", lease: .milliseconds(50), on: connection)
        Thread.sleep(forTimeInterval: 0.2)
        let (rescued, discarded) = try QueueMaintenance.rescueExpiredLeases(on: connection)
        #expect(rescued == 1 && discarded == 1)
        #expect(try state(of: ids[0]!, on: connection).state == .available)
        #expect(try state(of: ids[1]!, on: connection).state == .discarded)

        let again = try JobQueue.claim(kinds: ["diag.noop"], limit: 2, owner: "new-worker", lease: .seconds(30), on: connection)
        #expect(again.map(\.attempt) == [2])  // the lost attempt is counted
        #expect(try JobQueue.finish([(first[0].lease, .completed)], on: connection) == 0)
        #expect(try JobQueue.finish([(again[0].lease, .completed)], on: connection) == 1)
    }

    @Test func aWorkerThatClaimsItsOwnRescuedJobAgainIsNotFooledByItsOlderRun() throws {
        let connection = try TestDatabase().connect()
        try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)
        let older = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: "w", lease: .milliseconds(50), on: connection)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try QueueMaintenance.rescueExpiredLeases(on: connection).rescued == 1)
        let newer = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: "w", lease: .seconds(30), on: connection)
        #expect(newer.map(\.id) == older.map(\.id) && newer[0].lease != older[0].lease)
        // The older run's outcome, renewal and guarded writes find the job no longer theirs.
        #expect(try JobQueue.renewLeases([older[0].lease], lease: .seconds(30), on: connection) == 0)
        #expect(throws: PostgresError.self) { try JobQueue.requireLease(older[0].lease, on: connection) }
        #expect(try JobQueue.finish([(older[0].lease, .failed(error: "stale", retryIn: .seconds(1)))], on: connection) == 0)
        try JobQueue.requireLease(newer[0].lease, on: connection)
        #expect(try JobQueue.finish([(newer[0].lease, .completed)], on: connection) == 1)
    }

    /// A handler completes its jobs in its own transaction: they commit with its writes, or,
    /// when one lease is stale, the whole transaction is refused and nothing of it is kept.
    @Test func completingInTheHandlersTransactionCommitsWithItsWritesOrNotAtAll() throws {
        let connection = try TestDatabase().connect()
        try connection.execute("create table handler_writes (job_id bigint)")
        let ids = try JobQueue.enqueue([NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop")], on: connection)
        let stale = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: "w", lease: .milliseconds(50), on: connection)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try QueueMaintenance.rescueExpiredLeases(on: connection).rescued == 1)
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 3, owner: "w", lease: .seconds(30), on: connection)
        #expect(Set(claimed.map(\.id)) == Set(ids.compactMap { $0 }))
        let others = claimed.filter { $0.id != stale[0].id }

        // One stale lease among them: refused, naming that job; the handler's write is gone too.
        #expect {
            try connection.transaction { connection in
                try connection.execute("insert into handler_writes values (1)")
                try JobQueue.complete(others.map(\.lease) + [stale[0].lease], on: connection)
            }
        } throws: { error in
            let failure = error as? PostgresError
            return failure?.sqlState == "55000" && "\(error)".contains("job \(stale[0].id) no longer holds lease")
        }
        #expect(try connection.queryOne("select count(*) as n from handler_writes").decode(Int.self, "n") == 0)
        for job in claimed { #expect(try state(of: job.id, on: connection).state == .running) }

        // All held: completed and archived with the handler's write, and the worker's own finish
        // of the same leases changes nothing more.
        try connection.transaction { connection in
            try connection.execute("insert into handler_writes values (2)")
            try JobQueue.complete(claimed.map(\.lease), on: connection)
        }
        #expect(try connection.queryOne("select count(*) as n from handler_writes").decode(Int.self, "n") == 1)
        for job in claimed { #expect(try state(of: job.id, on: connection).state == .completed) }
        #expect(try JobQueue.finish(claimed.map { ($0.lease, JobOutcome.completed) }, on: connection) == 0)
        #expect(try connection.queryOne("select count(*) as n from job_history").decode(Int.self, "n") == 3)
    }

    /// A worker writes no outcome for a job its handler completed in its own transaction, and
    /// the job is not left leased: the worker exits when the queue is dry.
    @Test(.timeLimit(.minutes(2)))
    func aWorkerWritesNothingMoreForJobsItsHandlerCompleted() async throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try connection.execute("create table handler_writes (job_id bigint primary key)")
        let ids = try JobQueue.enqueue((0..<40).map { _ in NewJob(kind: "test.tx") }, on: connection)
        var handlers = JobHandlers()
        handlers.register("test.tx", batchSize: 8) { jobs, context in
            try context.connection().transaction { connection in
                try connection.execute("insert into handler_writes select unnest(\(jobs.map(\.id))::bigint[])")
                try JobQueue.complete(jobs.map(\.lease), on: connection)
            }
            return jobs.map { _ in .success(.completedInTransaction) }
        }
        try await workerUntilDone(db, handlers, id: "tx-test", concurrency: 16).run()
        #expect(try connection.queryOne("select count(*) as n from handler_writes").decode(Int.self, "n") == 40)
        let history = try connection.query("select id, state, attempt from job_history").rows
        #expect(history.count == 40)
        #expect(try Set(history.map { try $0.decode(Int64.self, "id") }) == Set(ids.compactMap { $0 }))
        #expect(try history.allSatisfy { try $0.decode(JobState.self, "state") == .completed && $0.decode(Int.self, "attempt") == 1 })
        #expect(try connection.queryOne("select count(*) as n from jobs").decode(Int.self, "n") == 0)
    }

    @Test func renewingALeaseKeepsTheJobFromRescue() throws {
        let connection = try TestDatabase().connect()
        let id = try #require(try JobQueue.enqueue([NewJob(kind: "diag.noop")], on: connection)[0])
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: owner, lease: .milliseconds(300), on: connection)
        for _ in 0..<4 {
            Thread.sleep(forTimeInterval: 0.1)
            #expect(try JobQueue.renewLeases([claimed[0].lease], lease: .milliseconds(300), on: connection) == 1)
        }
        #expect(try QueueMaintenance.rescueExpiredLeases(on: connection).rescued == 0)
        #expect(try state(of: id, on: connection).state == .running)
    }

    @Test func pruneRemovesOnlyFinishedJobsPastRetention() throws {
        let connection = try TestDatabase().connect()
        let ids = try JobQueue.enqueue([NewJob(kind: "diag.noop"), NewJob(kind: "diag.noop")], on: connection)
        let claimed = try JobQueue.claim(kinds: ["diag.noop"], limit: 1, owner: owner, lease: .seconds(30), on: connection)
        try JobQueue.finish([(claimed[0].lease, .completed)], on: connection)
        #expect(try QueueMaintenance.pruneFinishedJobs(olderThan: .seconds(3600), on: connection) == 0)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(try QueueMaintenance.pruneFinishedJobs(olderThan: .milliseconds(1), on: connection) == 1)
        let left = try connection.query("select id from all_jobs").rows.map { try $0.decode(Int64.self, "id") }
        #expect(left == [ids[1]!])
    }
}
