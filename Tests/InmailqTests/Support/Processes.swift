import EmbeddedPostgres
import Foundation
import Postgres

/// A directory for one test process's temporary files (children's output, migration files),
/// removed when the test process exits (a watchdog outlives it), so runs leave nothing behind.
enum TestScratch {
    static let directory: String = {
        let directory = NSTemporaryDirectory() + "inmailq-test-scratch-\(getpid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; rm -rf '\(directory)'"
        _ = try? ChildProcess.spawn(["/usr/bin/setsid", "/bin/sh", "-c", script], outputPath: "/dev/null")
        return directory
    }()
}

/// Runs the real `inmailq` executable as a child OS process, its output in a temp file.
struct InmailqProcess {
    let child: ChildProcess
    let outputPath: String

    static func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> InmailqProcess {
        let outputPath = TestScratch.directory + "/child-\(UInt32.random(in: 0...UInt32.max)).log"
        var environment = ProcessInfo.processInfo.environment
        environment["INMAILQ_SQL_DIR"] = TestPaths.root + "/sql"
        for (key, value) in extra { environment[key] = value }
        let child = try ChildProcess.spawn([TestPaths.executable] + arguments, environment: environment, outputPath: outputPath)
        return InmailqProcess(child: child, outputPath: outputPath)
    }

    /// Runs to the end; returns the exit status and everything it printed.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = try start(arguments, environment: environment)
        let status = process.child.wait()
        let output = process.output
        try? FileManager.default.removeItem(atPath: process.outputPath)
        return (status, output)
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Starts a server command and waits until it prints `announcement` followed by its URL;
    /// returns it and that URL, or stops it and says what it printed.
    static func startListening(_ arguments: [String], environment: [String: String], announcement: String) throws
        -> (process: InmailqProcess, url: String)
    {
        let process = try start(arguments, environment: environment)
        var found: String?
        _ = eventually(timeout: .seconds(30), every: 0.02) {
            found = process.output.split(separator: "\n").first { $0.hasPrefix(announcement) }.map { String($0.dropFirst(announcement.count)) }
            return found != nil || process.child.exitStatusIfEnded() != nil
        }
        guard let found else {
            process.stop()
            throw DoubleProcessError(message: "`inmailq \(arguments[0])` did not start: \(process.output)")
        }
        return (process, found)
    }

    /// SIGTERM, then SIGKILL after 10 s; nothing when it has already ended.
    func stop() {
        guard child.exitStatusIfEnded() == nil else { return }
        child.signal(SIGTERM)
        if wait(timeout: .seconds(10)) == nil {
            child.signal(SIGKILL)
            _ = child.wait()
        }
    }

    /// Waits up to `timeout` for the process to end; nil if it is still running.
    func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = child.exitStatusIfEnded() { return status }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration, every interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    repeat {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    } while ContinuousClock.now < deadline
    return try condition()
}

/// Waits until no job is available, running or due (the workers have done all they can for
/// now), or until one of `workers` has exited. Returns false on timeout.
func waitUntilQuiet(_ connection: Connection, workers: [InmailqProcess], timeout: Duration = .seconds(90)) throws -> Bool {
    var quietChecks = 0
    return try eventually(timeout: timeout, every: 0.25) {
        let busy = try connection.query(
            """
            select count(*) from jobs
            where state in ('available', 'running') or (state in ('scheduled', 'retryable') and run_at <= clock_now())
            """).first!.decode(Int.self, at: 0)
        quietChecks = busy == 0 ? quietChecks + 1 : 0
        return quietChecks >= 3 || workers.contains { $0.child.exitStatusIfEnded() != nil }
    }
}

/// Waits (up to 20 s) until `worker` holds a running job, then SIGKILLs it: the worker dies
/// without a word, mid-job. Returns whether it held jobs when killed, and its exit status.
func killWhileHoldingJobs(_ worker: InmailqProcess, _ connection: Connection) throws -> (busy: Bool, status: Int32) {
    let owner = SQL(unsafeText: "'%:\(worker.child.pid)'")
    let busy = try eventually(timeout: .seconds(20), every: 0.002) {
        try count("select count(*) from jobs where state = 'running' and lease_owner like \(owner)", connection) > 0
    }
    worker.child.signal(SIGKILL)
    return (busy, worker.child.wait())
}
