import ArgumentParser
import AsyncHTTPClient
import EmbeddedPostgres
import Foundation
import NIOCore
import NIOHTTP1
import Postgres
import Synchronization

/// `inmailq bench webhooks`: the gateway's webhooks posted to real `inmailq serve` processes.
struct WebhookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "POST N webhooks through S serve processes; measure acceptance, then process them and check none was lost or applied twice.",
        discussion: """
            Runs on a fresh database (inmailq_bench_<pid>) of the configured server, dropped \
            afterwards. Posts --events distinct message_received webhooks (half the accounts' \
            own messages, half members' messages in chats inmailq does not know) over \
            --connections keep-alive connections spread over the servers, plus --replays of them \
            again (the gateway's retries). Then worker processes apply them. The ceiling beside \
            it: the same client against GET /healthz (HTTP alone, no database). One line:
              bench=webhooks cores=2 events=... accepted_events_per_s=... p50_ms=... p99_ms=... lost=0 applied_twice=0 ...
            """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Distinct webhooks to post.")
    var events: Int = 50_000

    @Option(help: "Of them, how many to post a second time (replays).")
    var replays: Int = 2_500

    @Option(help: "inmailq serve processes.")
    var servers: Int = 2

    @Option(help: "Concurrent HTTP connections of the client, spread over the servers.")
    var connections: Int = 64

    @Option(help: "Database writer sessions of each serve process.")
    var dbWriters: Int = 1

    @Option(help: "Worker processes applying the webhooks afterwards.")
    var processes: Int = 2

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    func validate() throws {
        try requireInRange(events, 1...10_000_000, "--events")
        try requireInRange(replays, 0...events, "--replays")
        try requireInRange(servers, 1...64, "--servers")
        try requireInRange(connections, 1...4_096, "--connections")
        try requireInRange(dbWriters, 1...64, "--db-writers")
        try requireInRange(processes, 1...64, "--processes")
    }

    func run() async throws {
        let bench = try BenchDatabase(options: options)
        defer { if !keep { bench.drop() } }
        let secret = UUID().uuidString
        progress("starting \(servers) inmailq serve processes")
        let started = try (0..<servers).map { index in try startServe(bench: bench, secret: secret, index: index) }
        defer {
            for (child, _) in started { child.signal(SIGTERM); _ = child.wait() }
        }
        let urls = started.map(\.1)
        var settings = HTTPClient.Configuration(
            connectionPool: .init(idleTimeout: .seconds(60),
                                  concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connections / servers + 1)))
        settings.httpVersion = .http1Only
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
        do {
            try await measure(http, bench: bench, urls: urls, secret: secret)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try? await http.shutdown()
    }

    private func measure(_ http: HTTPClient, bench: BenchDatabase, urls: [String], secret: String) async throws {

        // The same client against the probe: what HTTP alone allows on this machine.
        let probes = min(events, 20_000)
        progress("ceiling: \(probes) GET /healthz")
        let ceiling = try await drive(http, total: probes) { index in
            var request = HTTPClientRequest(url: urls[index % urls.count] + "/healthz")
            request.method = .GET
            return request
        }

        progress("posting \(events) webhooks and \(replays) replays over \(connections) connections")
        let total = events + replays
        let posted = try await drive(http, total: total) { index in
            let event = index < events ? index : (index - events) * max(1, events / max(1, replays))
            var request = HTTPClientRequest(url: urls[index % urls.count] + "/webhooks/gateway")
            request.method = .POST
            request.headers.add(name: "Unipile-Auth", value: secret)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: Self.webhook(event % events)))
            return request
        }
        guard posted.failures == 0 else {
            throw CommandFailure("\(posted.failures) webhooks were not answered 200 (first: \(posted.firstFailure ?? "?")); serve logs: \(bench.workerLog).serve-*")
        }

        let connection = try Connection(bench.configuration)
        let stored = try connection.queryOne("select count(*) as n from gateway_inbox").decode(Int.self, "n")
        progress("applying them with \(processes) worker processes")
        let start = ContinuousClock.now
        let workers = try (0..<processes).map { _ in
            try bench.startWorker(concurrency: 16, kinds: "inbox.process", extra: ["--exit-when-done"])
        }
        for worker in workers {
            guard worker.wait() == 0 else { throw CommandFailure("a worker failed; its log: \(bench.workerLog)") }
        }
        let applySeconds = (ContinuousClock.now - start).seconds
        let check = try connection.queryOne(
            """
            select (select count(*) from gateway_inbox where state = 'received') as unapplied,
                   (select count(*) from (select id.value from all_jobs, jsonb_array_elements_text(args->'inbox_ids') as id
                                          where kind = 'inbox.process' group by 1 having count(*) > 1) twice) as applied_twice,
                   (select count(*) from all_jobs where kind = 'inbox.process' and state <> 'completed') as unfinished
            """)
        let results: [(String, String)] = [
            ("bench", "webhooks"), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"), ("events", "\(events)"),
            ("replays", "\(replays)"), ("servers", "\(servers)"), ("connections", "\(connections)"), ("db_writers", "\(dbWriters)"),
            ("accepted_events_per_s", format(Double(total) / posted.seconds)),
            ("p50_ms", format(posted.percentile(0.50), digits: 1)), ("p99_ms", format(posted.percentile(0.99), digits: 1)),
            ("stored", "\(stored)"), ("duplicates_answered", "\(posted.duplicates)"),
            ("lost", "\(events - stored)"), ("unapplied", "\(try check.decode(Int.self, "unapplied"))"),
            ("applied_twice", "\(try check.decode(Int.self, "applied_twice"))"),
            ("apply_events_per_s", format(Double(stored) / applySeconds)),
            ("healthz_requests_per_s", format(Double(probes) / ceiling.seconds)),
            ("healthz_p99_ms", format(ceiling.percentile(0.99), digits: 1)),
        ]
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// A webhook as the gateway sends it: every even one the account's own message.
    static func webhook(_ index: Int) -> String {
        let own = index % 2 == 0
        let sender = own ? "ACoAAbenchaccount" : "ACoAAmember\(index)"
        return """
            {"event":"message_received","account_id":"bench-account","account_type":"LINKEDIN","webhook_name":"inmailq",\
            "account_info":{"type":"LINKEDIN","feature":"classic","user_id":"ACoAAbenchaccount"},\
            "chat_id":"bench-chat-\(index % 5_000)","message_id":"bench-message-\(index)",\
            "message":"Thanks for your note, message number \(index). Happy to talk next week.",\
            "timestamp":"2026-11-23T10:00:00.000Z","sender":{"attendee_provider_id":"\(sender)","attendee_name":"Member \(index)"}}
            """
    }

    struct Run {
        var seconds: Double
        var latencies: [Double]
        var failures: Int
        var duplicates: Int
        var firstFailure: String?

        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            let sorted = latencies.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
    }

    /// Sends `total` requests, `connections` at a time; latencies in milliseconds.
    private func drive(_ http: HTTPClient, total: Int, _ request: @escaping @Sendable (Int) -> HTTPClientRequest) async throws -> Run {
        let next = TicketCounter()
        let start = ContinuousClock.now
        let parts = try await withThrowingTaskGroup(of: Run.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    var part = Run(seconds: 0, latencies: [], failures: 0, duplicates: 0)
                    while true {
                        let index = next.take()
                        guard index < total else { break }
                        let sent = ContinuousClock.now
                        do {
                            let response = try await http.execute(request(index), timeout: .seconds(30))
                            let body = try await response.body.collect(upTo: 1 << 16)
                            if response.status == .ok {
                                if body.readableBytesView.count > 0, String(buffer: body).contains("duplicate") { part.duplicates += 1 }
                            } else {
                                part.failures += 1
                                part.firstFailure = part.firstFailure ?? "\(response.status.code) \(String(buffer: body))"
                            }
                        } catch {
                            part.failures += 1
                            part.firstFailure = part.firstFailure ?? "\(error)"
                        }
                        part.latencies.append((ContinuousClock.now - sent).seconds * 1_000)
                    }
                    return part
                }
            }
            var all: [Run] = []
            for try await part in group { all.append(part) }
            return all
        }
        return Run(
            seconds: (ContinuousClock.now - start).seconds, latencies: parts.flatMap(\.latencies),
            failures: parts.map(\.failures).reduce(0, +), duplicates: parts.map(\.duplicates).reduce(0, +),
            firstFailure: parts.compactMap(\.firstFailure).first)
    }

    /// `inmailq serve` on a free port of the benchmark database; returns it and its URL.
    private func startServe(bench: BenchDatabase, secret: String, index: Int) throws -> (ChildProcess, String) {
        try startListening(
            ["serve", "--database-url", bench.configuration.conninfo, "--listen", "127.0.0.1:0", "--db-writers", "\(dbWriters)",
             "--log-level", "warning"],
            environment: ["INMAILQ_WEBHOOK_SECRET": secret], log: bench.workerLog + ".serve-\(index)",
            announcement: "inmailq serve listening on ")
    }
}

/// Hands out 0, 1, 2, ... to concurrent tasks.
final class TicketCounter: Sendable {
    private let value = Atomic<Int>(0)

    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
