import ArgumentParser
import EmbeddedPostgres
import Foundation
import InMail
import Postgres
import Queue

/// `inmailq bench pipeline`: the whole send path through real worker processes.
struct PipelineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Send N contacts' InMails from A accounts with P worker processes: the full send path, in jobs/s.",
        discussion: """
            Each job is one contact's first InMail: claimed with its account's daily slot and credit \
            reserved in the claim's transaction, rendered from the campaign's template, delivered to \
            the sandbox courier (a perfect platform: no delay, no failures, no responses), recorded, \
            and its reservation spent. One in three contacts has an open profile (a free InMail, S1). \
            The accounts are on a benchmark plan with room for every send (no daily or monthly cap that \
            a run reaches), so limits never stop it.

            Runs on a fresh database (inmailq_bench_<pid>) of the configured server, dropped \
            afterwards. The result is one line on standard output:
              bench=pipeline cores=2 contacts=... accounts=... processes=... concurrency=... jobs_per_s=... busy_jobs_per_s=...
            Compare with `inmailq bench queue --processes P` (no-op jobs) on the same server.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(help: "Contacts to send to (one send job each).")
    var contacts: Int = 10_000

    @Option(help: "Sender accounts they are spread over.")
    var accounts: Int = 100

    @Option(help: "Worker processes.")
    var processes: Int = 2

    @Option(help: "Concurrency of each worker process.")
    var concurrency: Int = 32

    @Option(help: "sandbox (in the database), or gateway: over HTTP through the gateway courier to a gateway double started for the run.")
    var courier: CourierChoice = .sandbox

    @Option(help: "With --courier gateway: milliseconds the double takes to answer each request.")
    var latencyMs: Int = 0

    @Flag(help: "Run the workers as a login of the inmailq_worker role (row-level security applies), not the benchmark's own.")
    var workerRole = false

    @Flag(help: "Keep the benchmark database instead of dropping it.")
    var keep = false

    func validate() throws {
        guard contacts > 0, accounts > 0, processes > 0, concurrency > 0 else {
            throw ValidationError("--contacts, --accounts, --processes and --concurrency must be positive")
        }
        try requireInRange(latencyMs, 0...60_000, "--latency-ms")
    }

    func run() throws {
        var bench = try BenchDatabase(options: options)
        if workerRole { try bench.useWorkerRole() }
        defer { if !keep { bench.drop() } }
        let connection = try Connection(bench.configuration)
        progress("creating \(accounts) sender accounts and a campaign of \(contacts) contacts")
        let campaign = try BenchCampaign.create(contacts: contacts, accounts: accounts, agency: "Bench agency", bench: bench, on: connection)

        var extra = ["--exit-when-done"]
        var environment: [String: String] = [:]
        var double: ChildProcess?
        defer { double.map { $0.signal(SIGTERM); _ = $0.wait() } }
        if courier == .gateway {
            let key = UUID().uuidString
            let url: String
            (double, url) = try startDouble(key: key, log: bench.workerLog + ".double")
            try connection.execute("select count(connect_gateway_account(id, 'bench-' || id, interval '0')) from sender_accounts")
            extra += ["--courier", "gateway", "--gateway-rps", "10000"]
            environment = ["INMAILQ_GATEWAY_URL": url, "INMAILQ_GATEWAY_API_KEY": key]
        }
        progress("sending with \(processes) worker processes x \(concurrency) through the \(courier.rawValue) courier")
        let start = ContinuousClock.now
        let workers = try (0..<processes).map { _ in
            try bench.startWorker(concurrency: concurrency, kinds: Outreach.sendKind, extra: extra, environment: environment)
        }
        for worker in workers {
            guard worker.wait() == 0 else { throw CommandFailure("a worker failed; its log: \(bench.workerLog)") }
        }
        let seconds = (ContinuousClock.now - start).seconds
        let check = try connection.queryOne(
            """
            select (select count(*) from messages where campaign_id = \(campaign) and state = 'sent') as sent,
                   (select count(*) from reservations where state = 'spent') as spent,
                   \(SQL(unsafeText: courier == .sandbox
                       ? "(select count(*) from sandbox_messages where receipt is not null)"
                       : "(select count(*) from messages where state = 'sent' and chat_id is not null)")) as delivered
            """)
        let sent = try check.decode(Int.self, "sent")
        guard sent == contacts, try check.decode(Int.self, "spent") == contacts, try check.decode(Int.self, "delivered") == contacts else {
            throw CommandFailure("only \(sent) of \(contacts) contacts were sent; worker log: \(bench.workerLog)")
        }
        let results: [(String, String)] = [
            ("bench", "pipeline"), ("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"),
            ("worker_role", workerRole ? "inmailq_worker" : "owner"), ("contacts", "\(contacts)"),
            ("accounts", "\(accounts)"), ("processes", "\(processes)"), ("concurrency", "\(concurrency)"), ("courier", courier.rawValue),
            ("latency_ms", courier == .gateway ? "\(latencyMs)" : "0"),
            ("handler_threads", "\(processes * concurrency)"),
            ("jobs_per_s", format(Double(contacts) / seconds)),
            ("busy_jobs_per_s", format(Double(contacts) / (try QueueInspection.busySeconds(on: connection)))),
        ]
        print(results.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// `inmailq gateway-double` on a free port, with room for every send; returns it and its URL.
    private func startDouble(key: String, log: String) throws -> (ChildProcess, String) {
        try startListening(
            ["gateway-double", "--listen", "127.0.0.1:0", "--credits", "1000000", "--latency-ms", "\(latencyMs)"],
            environment: ["INMAILQ_GATEWAY_API_KEY": key], log: log, announcement: "gateway double listening on ")
    }
}

/// A campaign for the send-path benchmarks: `accounts` new sender accounts of a new agency on a
/// plan with room for every send (no daily or monthly cap a run reaches, credits renewed), and
/// `contacts` waiting contacts, one in three with an open profile (S1); activated, so each
/// contact has its send job.
enum BenchCampaign {
    static func create(contacts: Int, accounts: Int, agency: String, bench: BenchDatabase, on connection: Connection) throws -> Int64 {
        let campaign = try connection.transaction { connection in
            try connection.execute(
                """
                insert into plans (code, name, can_send_inmail, monthly_allotment, credit_cap, can_purchase)
                values ('bench', 'Benchmark plan (room for every send)', true, 1000000, 1000000, false)
                on conflict (code) do nothing
                """)
            let workspace = try bench.workspace(agency: agency, on: connection)
            try connection.execute(
                """
                insert into sender_accounts (workspace_id, display_name, plan_code, billing_anchor, working_days,
                                             working_start, working_end, daily_inmail_limit, monthly_free_inmail_limit,
                                             min_spacing, max_spacing)
                select \(workspace), 'Bench sender ' || n, 'bench', (clock_now() at time zone 'UTC')::date, '{1,2,3,4,5,6,7}',
                       '00:00', '24:00', 1000000, null, '0', '0'
                from generate_series(1, \(accounts)) as n
                """)
            try connection.execute(
                "select renew_credits(id, (clock_now() at time zone 'UTC')::date) from sender_accounts where workspace_id = \(workspace)")
            let campaign = try Campaigns.create(workspace: workspace, name: "Bench", on: connection)
            try Campaigns.setStep(
                campaign: campaign, position: 0, subject: "{{first_name|Hello}}, a question about {{company|your team}}",
                body: "Hi {{first_name|there}}, I help teams like {{company|yours}} hire {{role|engineers}} faster. Open to a call?",
                delayDays: nil, on: connection)
            try connection.execute(
                "insert into campaign_senders (campaign_id, account_id) select \(campaign), id from sender_accounts where workspace_id = \(workspace)")
            try connection.execute(
                """
                insert into contacts (campaign_id, workspace_id, member_key, profile_url, first_name, company, custom_fields, open_profile)
                select \(campaign), \(workspace), 'in:bench-' || n, 'https://www.linkedin.com/in/bench-' || n,
                       case when n % 5 = 0 then null else 'Member ' || n end, 'Company ' || n % 100,
                       jsonb_build_object('role', 'engineers'), n % 3 = 0
                from generate_series(1, \(contacts)) as n
                """)
            try connection.execute("update sandbox_settings set perfect = true, latency_ms = 0")
            return campaign
        }
        try Campaigns.activate(campaign: campaign, on: connection)
        return campaign
    }
}
