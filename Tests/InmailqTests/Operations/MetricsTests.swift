import AsyncHTTPClient
import Foundation
import InMail
import NIOCore
import Postgres
import Prometheus
import Queue
import Server
import Testing

/// /metrics of workers and `serve`, scraped over HTTP after known work.
@Suite("Metrics")
struct MetricsTests {
    @Test(.timeLimit(.minutes(3)))
    func workersCountJobsAndOnlyTheElectedOneSamplesTheDatabase() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        try JobQueue.enqueue((0..<20).map { _ in NewJob(kind: "diag.noop") }, on: connection)
        try JobQueue.enqueue([
            NewJob(kind: "diag.fail", args: JSONText(#"{"times": 5}"#), maxAttempts: 1),  // discarded
            NewJob(kind: "diag.fail", args: JSONText(#"{"times": 1}"#), maxAttempts: 3),  // fails once, then completes
            NewJob(kind: "diag.fail", args: JSONText(#"{"times": 1}"#), maxAttempts: 3),
            NewJob(kind: "diag.noop", runAt: Date().addingTimeInterval(86_400)),           // waits a day
        ], on: connection)
        let first = try MetricsProcess(["worker", "--database-url", db.url, "--retry-base", "0", "--kinds", "diag.noop,diag.fail"])
        defer { first.process.stop() }
        #expect(try waitUntilQuiet(connection, workers: [first.process]))
        // The elected worker samples the queue's depth: one job waits, scheduled. (A sample taken
        // before the queue went quiet shows that too, beside jobs still available: wait for one
        // taken after.)
        var metrics: [String: Double] = [:]
        #expect(try eventually(timeout: .seconds(20)) {
            metrics = try first.scrape()
            return metrics[#"inmailq_queue_jobs{state="scheduled",kind="diag.noop"}"#] == 1
                && !metrics.keys.contains { $0.hasPrefix(#"inmailq_queue_jobs{state="available""#) }
        }, "\(metrics)")
        #expect(metrics[#"inmailq_jobs_claimed_total{kind="diag.noop"}"#] == 20)
        #expect(metrics[#"inmailq_jobs_completed_total{kind="diag.noop"}"#] == 20)
        #expect(metrics[#"inmailq_job_duration_seconds_count{kind="diag.noop"}"#] == 20)
        #expect(metrics[#"inmailq_job_wait_seconds_count{kind="diag.noop"}"#] == 20)
        #expect(metrics[#"inmailq_jobs_completed_total{kind="diag.fail"}"#] == 2)
        #expect(metrics[#"inmailq_jobs_failed_total{kind="diag.fail"}"#] == 2)
        #expect(metrics[#"inmailq_jobs_discarded_total{kind="diag.fail"}"#] == 1)
        #expect((metrics["inmailq_claim_duration_seconds_count"] ?? 0) >= 1)
        #expect(metrics["inmailq_maintenance_leader"] == 1)
        #expect(metrics.keys.contains { $0.hasPrefix(#"inmailq_queue_jobs{state="available""#) } == false)
        #expect(metrics[#"inmailq_queue_oldest_available_seconds{kind="diag.noop"}"#] == 0)  // none waits for a worker
        #expect(try first.get("/healthz").status == 200)

        // A second worker is not elected: it samples nothing, so N workers run one query.
        let second = try MetricsProcess(["worker", "--database-url", db.url, "--kinds", "diag.noop"])
        defer { second.process.stop() }
        Thread.sleep(forTimeInterval: 1.5)  // several sample intervals
        let other = try second.scrape()
        #expect(other["inmailq_maintenance_leader"] == 0)
        #expect(other.keys.contains { $0.hasPrefix("inmailq_queue_jobs") } == false, "\(other)")

        // When the elected worker stops, the other takes over and publishes the depth.
        first.process.stop()
        #expect(try eventually(timeout: .seconds(20)) {
            let now = try second.scrape()
            return now["inmailq_maintenance_leader"] == 1 && now[#"inmailq_queue_jobs{state="scheduled",kind="diag.noop"}"#] == 1
        })
    }

    /// S6 and the gateway: a limit of two InMails a day, four contacts. Two are delivered over
    /// HTTP, the rest refused by the daily limit; the account's gauges say so.
    @Test(.timeLimit(.minutes(3)))
    func theSendPathCountsDeliveriesRefusalsAndGatewayRequests() throws {
        let key = "metrics-\(UInt32.random(in: 0...UInt32.max))"
        let double = try GatewayDoubleProcess(apiKey: key, credits: 1_000)
        let db = try TestDatabase()
        let connection = try db.connect()
        let accounts = AccountFixture(connection: connection)
        let workspace = try accounts.workspace()
        let agency = try connection.queryOne("select agency_id from workspaces where id = \(workspace)").decode(Int64.self, "agency_id")
        let account = try accounts.account(plan: "sales_navigator", workspace: workspace, dailyLimit: 2)
        try accounts.renewCurrentCycle(account)
        try connection.execute("select connect_gateway_account(\(account), \("li-\(account)"), interval '0')")
        let campaign = try Campaigns.create(workspace: workspace, name: "Metrics", on: connection)
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hello", body: "A question", delayDays: nil, on: connection)
        try Campaigns.addSender(campaign: campaign, account: account, on: connection)
        _ = try Contacts.add(campaign: campaign, links: (0..<4).map { (line: $0 + 1, text: "https://www.linkedin.com/in/metrics-\($0)") }, on: connection)
        try Campaigns.activate(campaign: campaign, on: connection)

        let worker = try MetricsProcess(  // under the workers' role (sql/access), as in production
            ["worker", "--database-url", TestRoles.url(db, as: try TestRoles.login(.worker)), "--courier", "gateway", "--gateway-rps", "100"],
            environment: ["INMAILQ_GATEWAY_URL": double.url, "INMAILQ_GATEWAY_API_KEY": key])
        defer { worker.process.stop() }
        #expect(try waitUntilQuiet(connection, workers: [worker.process]))
        let labels = #"{account="\#(account)",agency="\#(agency)"}"#
        let credits = Double(try accounts.balance(account))
        var metrics: [String: Double] = [:]
        #expect(try eventually(timeout: .seconds(20)) {
            metrics = try worker.scrape()
            return metrics["inmailq_account_inmails_today" + labels] == 2 && metrics["inmailq_account_credits" + labels] == credits
        }, "\(metrics.filter { $0.key.hasPrefix("inmailq_account") })")
        #expect(metrics[#"inmailq_deliveries_total{outcome="delivered"}"#] == 2)
        #expect((metrics[#"inmailq_reservations_refused_total{reason="daily_limit_reached"}"#] ?? 0) >= 1)
        #expect(metrics[#"inmailq_jobs_snoozed_total{kind="inmail.send"}"#] ?? 0 >= 1)
        #expect(metrics["inmailq_account_inmail_limit" + labels] == 2)
        #expect(metrics["inmailq_accounts_at_daily_limit"] == 1)
        #expect(metrics[#"inmailq_accounts{status="active"}"#] == 1)
        let posted = metrics.filter { $0.key.hasPrefix(#"inmailq_gateway_requests_total{method="POST",status="2"#) }.values.reduce(0, +)
        #expect(posted == 2, "\(metrics.filter { $0.key.hasPrefix("inmailq_gateway") })")
        #expect(try count("select count(*) from messages where state = 'sent'", connection) == 2)

        // Every series the dashboard and the alert rules in deploy/ use is one that a worker or
        // serve exports.
        let serve = try ServeProcess(databaseURL: db.url, arguments: ["--metrics-listen", "127.0.0.1:0"])
        #expect(try serve.post(#"{"event": "message_received", "message_id": "m-x"}"#).status < 500)
        let serveMetrics = try MetricsProcess.scrape(try serve.metricsURL())
        let exported = Set((Array(metrics.keys) + Array(serveMetrics.keys)).map { String($0.prefix { $0 != "{" }) })
        for file in ["deploy/grafana/inmailq-dashboard.json", "deploy/prometheus/inmailq-alerts.yml"] {
            let text = try String(contentsOfFile: TestPaths.root + "/" + file, encoding: .utf8)
            let used = Set(text.matches(of: /inmailq_[a-z_]+/).map { String($0.output) }.filter { !$0.hasPrefix("inmailq_test") })
            #expect(used.count >= 5, "\(file)")
            for name in used.sorted() {
                #expect(exported.contains(name) || exported.contains(name + "_count") || exported.contains(name.replacingOccurrences(of: "_bucket", with: "_count")),
                        "\(file) uses \(name), which nothing exports")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func serveCountsWebhooksByOutcome() throws {
        let db = try TestDatabase()
        let serve = try ServeProcess(databaseURL: TestRoles.url(db, as: try TestRoles.login(.worker)), arguments: ["--metrics-listen", "127.0.0.1:0"])
        let metricsURL = try serve.metricsURL()
        let body = #"{"event": "message_received", "account_id": "li-1", "message_id": "m-metrics-1", "chat_id": "c-1", "message": "hi", "sender": {"attendee_provider_id": "x"}, "is_sender": false}"#
        #expect(try serve.post(body).status == 200)
        #expect(try serve.post(body).status == 200)                    // a replay
        #expect(try serve.post(body, secret: "wrong secret").status == 401)
        let metrics = try MetricsProcess.scrape(metricsURL)
        #expect(metrics[#"inmailq_webhooks_total{outcome="stored"}"#] == 1)
        #expect(metrics[#"inmailq_webhooks_total{outcome="duplicate"}"#] == 1)
        #expect(metrics[#"inmailq_webhooks_total{outcome="unauthorized"}"#] == 1)
    }

    /// A scrape sees a database sample whole or not at all: samples of two disjoint sets of
    /// series, published one after the other on another thread, race scrapes of what GET /metrics
    /// answers (300, and on until both sets were seen). Each scrape holds every series of one set
    /// with its value, and none of the other. (A partial sample once went out: a CI scrape saw an
    /// account's gauges without the agency-wide ones.)
    @Test(.timeLimit(.minutes(1)))
    func aScrapeSeesEachSampleWhole() throws {
        let registry = PrometheusCollectorRegistry()
        let gauges = SampledGauges()
        defer { gauges.clear() }
        let series = 50
        let samples: [[SampledGauges.Series]] = ["a", "b"].map { set in
            (0..<series).map { ("inmailq_test_sampled_\(set)", [("n", String($0))], 1) }
        }
        gauges.publish(samples[0])
        let started = DispatchSemaphore(value: 0), stop = DispatchSemaphore(value: 0), stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            started.signal()
            var round = 1
            while stop.wait(timeout: .now()) == .timedOut {
                gauges.publish(samples[round % 2])
                round += 1
            }
            stopped.signal()
        }
        var partial: [String] = []
        var whole: [String: Int] = [:]
        var scraped = 0
        started.wait()
        while scraped < 300 || (whole.count < 2 && partial.isEmpty) {
            scraped += 1
            let text = String(decoding: MetricsServer.exposition(of: registry), as: UTF8.self)
            var valued = ["a": 0, "b": 0], listed = ["a": 0, "b": 0]
            for line in text.split(separator: "\n") where line.hasPrefix("inmailq_test_sampled_") {
                let set = String(line.dropFirst("inmailq_test_sampled_".count).prefix(1))
                listed[set, default: 0] += 1
                if line.hasSuffix(" 1.0") { valued[set, default: 0] += 1 }
            }
            switch (listed["a"]!, listed["b"]!) {
            case (series, 0) where valued["a"] == series: whole["a", default: 0] += 1
            case (0, series) where valued["b"] == series: whole["b", default: 0] += 1
            default: partial.append("a: \(listed["a"]!) series (\(valued["a"]!) valued), b: \(listed["b"]!) (\(valued["b"]!))")
            }
        }
        stop.signal()
        stopped.wait()
        #expect(partial.count == 0, "\(partial.count) scrapes saw part of a sample, as \(partial.prefix(3))")
    }

    /// A sample in Prometheus's text format: each metric's lines together under one TYPE line,
    /// though the sample interleaves them (as the account sampler does, account by account); label
    /// values escaped; NaN and infinities spelled the format's way; and `clear` takes them away.
    @Test func aSampleIsWrittenInTheTextFormat() throws {
        let registry = PrometheusCollectorRegistry()
        let gauges = SampledGauges()
        defer { gauges.clear() }
        gauges.publish([
            ("inmailq_test_format_x", [("account", "1")], 3),
            ("inmailq_test_format_y", [("account", "1")], .nan),
            ("inmailq_test_format_x", [("account", #"a "quoted" \ and"# + "\nnew line")], 4.5),
            ("inmailq_test_format_y", [("account", "2")], .infinity),
            ("inmailq_test_format_z", [], -.infinity),
        ])
        let lines = String(decoding: MetricsServer.exposition(of: registry), as: UTF8.self)
            .split(separator: "\n").map(String.init).filter { $0.contains("inmailq_test_format_") }
        #expect(lines == [
            "# TYPE inmailq_test_format_x gauge",
            #"inmailq_test_format_x{account="1"} 3.0"#,
            #"inmailq_test_format_x{account="a \"quoted\" \\ and\nnew line"} 4.5"#,
            "# TYPE inmailq_test_format_y gauge",
            #"inmailq_test_format_y{account="1"} NaN"#,
            #"inmailq_test_format_y{account="2"} +Inf"#,
            "# TYPE inmailq_test_format_z gauge",
            "inmailq_test_format_z -Inf",
        ])
        gauges.clear()
        #expect(!String(decoding: MetricsServer.exposition(of: registry), as: UTF8.self).contains("inmailq_test_format_"))
    }
}

/// An inmailq process run with `--metrics-listen 127.0.0.1:0`, and its /metrics read over HTTP.
struct MetricsProcess {
    let process: InmailqProcess
    let url: String

    static func announcement(_ command: String) -> String { "inmailq \(command) metrics on " }

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        (process, url) = try InmailqProcess.startListening(
            arguments + ["--metrics-listen", "127.0.0.1:0", "--metrics-interval", "0.2", "--log-level", "warning"],
            environment: environment, announcement: Self.announcement(arguments[0]))
    }

    func scrape() throws -> [String: Double] { try Self.scrape(url) }

    func get(_ path: String) throws -> (status: Int, body: String) {
        try Self.get(url.replacingOccurrences(of: "/metrics", with: path))
    }

    /// Every sample line of the Prometheus text format, by series (name and labels as written).
    static func scrape(_ url: String) throws -> [String: Double] {
        let (status, body) = try get(url)
        guard status == 200 else { throw DoubleProcessError(message: "GET \(url) answered \(status): \(body)") }
        var samples: [String: Double] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    static func get(_ url: String) throws -> (status: Int, body: String) {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { try? http.syncShutdown() }
        let response = try http.execute(request: try HTTPClient.Request(url: url), deadline: .now() + .seconds(10)).wait()
        return (Int(response.status.code), response.body.map { String(buffer: $0) } ?? "")
    }
}

extension ServeProcess {
    /// The /metrics URL `serve --metrics-listen` announced (waiting up to 10 s for the line).
    func metricsURL() throws -> String {
        let announcement = MetricsProcess.announcement("serve")
        var found: String?
        _ = eventually(timeout: .seconds(10)) {
            found = process.output.split(separator: "\n").first { $0.hasPrefix(announcement) }.map { String($0.dropFirst(announcement.count)) }
            return found != nil
        }
        guard let found else { throw DoubleProcessError(message: "serve announced no metrics URL: \(process.output)") }
        return found
    }
}
