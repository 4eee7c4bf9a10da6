import ArgumentParser
import Dispatch
import Foundation
import Gateway
import InMail
import Logging
import Postgres
import Queue
import ServiceLifecycle
import Synchronization

/// `inmailq worker`: runs jobs until SIGTERM or SIGINT.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run jobs from the queue until stopped.",
        discussion: """
            Claims jobs with FOR UPDATE SKIP LOCKED, wakes on NOTIFY within milliseconds (polling \
            only as a fallback), and renews each job's lease while it runs. Start as many workers \
            as you like, on any hosts: they share the work through the database alone.

            SIGTERM or SIGINT: stop claiming, let running jobs finish within --shutdown-deadline \
            (then release them to other workers), exit 0. A second signal releases them at once.
            """
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var metrics: MetricsOptions

    @Option(help: "Jobs run at once; the worker opens at most this many database sessions plus 3 (claims, outcomes, maintenance).")
    var concurrency: Int = 10

    @Option(help: ArgumentHelp("Comma-separated job kinds to run (default: every kind this build handles).", valueName: "kinds"))
    var kinds: String?

    @Option(help: "Seconds a job stays leased without a heartbeat; a dead worker's jobs run elsewhere after it.")
    var lease: Double = 30

    @Option(help: "Seconds between polls when no NOTIFY arrives.")
    var pollInterval: Double = 1

    @Option(help: "Seconds running jobs may take to finish after SIGTERM.")
    var shutdownDeadline: Double = 20

    @Option(help: "Seconds before the first retry of a failed job; doubles per attempt.")
    var retryBase: Double = 1

    @Option(help: "Days finished jobs are kept before they are pruned.")
    var retentionDays: Double = 7

    @Option(help: """
        Where messages are delivered: sandbox (the simulated LinkedIn in the database) or gateway \
        (the LinkedIn messaging gateway at INMAILQ_GATEWAY_URL, with the API key from \
        INMAILQ_GATEWAY_API_KEY or --gateway-api-key-file).
        """)
    var courier: CourierChoice = .sandbox

    @Option(help: ArgumentHelp("A file holding the gateway's API key (instead of INMAILQ_GATEWAY_API_KEY).", valueName: "path"))
    var gatewayApiKeyFile: String?

    @Option(help: "Requests per second to the gateway from all workers together (one budget in the database).")
    var gatewayRps: Double = 20

    @Option(help: "Seconds a gateway request may take, answer included; past it the message is checked at the gateway before any resend.")
    var gatewayTimeout: Double = 30

    @Option(help: "Seconds between two comparisons of each account's credits with LinkedIn's count (by the elected worker).")
    var gatewayBalanceInterval: Double = 600

    @Option(help: ArgumentHelp("""
        With --pool-mode transaction (the database URL leads to PgBouncer): a direct URL of the \
        server for the one session that LISTENs for new jobs and claims them (default: \
        INMAILQ_DIRECT_DATABASE_URL; without one the worker polls every --poll-interval).
        """, valueName: "url"))
    var directDatabaseUrl: String? = ProcessInfo.processInfo.environment["INMAILQ_DIRECT_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }

    @Flag(help: "Exit once no unfinished job of the worker's kinds remains.")
    var exitWhenDone = false

    func validate() throws {
        try requireInRange(concurrency, 1...4096, "--concurrency")
        try requireInRange(lease, 0.5...3600, "--lease (seconds)")
        try requireInRange(pollInterval, 0.01...3600, "--poll-interval (seconds)")
        try requireInRange(shutdownDeadline, 0...3600, "--shutdown-deadline (seconds)")
        try requireInRange(retryBase, 0...86_400, "--retry-base (seconds)")
        try requireInRange(retentionDays, 0.001...3650, "--retention-days")
        try requireInRange(gatewayRps, 0.1...10_000, "--gateway-rps")
        try requireInRange(gatewayTimeout, 0.1...600, "--gateway-timeout (seconds)")
        try requireInRange(gatewayBalanceInterval, 1...86_400, "--gateway-balance-interval (seconds)")
    }

    /// The gateway courier, its key and URL checked with the gateway before any claim.
    private func gatewayCourier(pool: ConnectionPool, logger: Logger) throws -> GatewayCourier {
        var configuration = try GatewaySettings.configuration(apiKeyFile: gatewayApiKeyFile)
        configuration.requestTimeout = .milliseconds(Int(gatewayTimeout * 1000))
        configuration.maxConnections = concurrency
        let client = GatewayClient(configuration, pacer: SharedRequestPacer(pool: pool, perSecond: gatewayRps), logger: logger)
        do {
            try client.checkAccess()
        } catch {
            client.shutdown()
            throw ValidationError("the gateway at \(configuration.baseURL) refused or did not answer: \(error)")
        }
        logger.info("delivering through the gateway", metadata: ["gateway": "\(configuration)", "rps": "\(gatewayRps)"])
        return GatewayCourier(
            client: client, pool: pool, balanceInterval: .milliseconds(Int(gatewayBalanceInterval * 1000)), logger: logger)
    }

    func run() async throws {
        let logger = options.makeLogger("worker")
        let metricsServer = try metrics.service(process: "worker", logger: logger)  // before anything records a metric
        var handlers = JobHandlers()
        DiagnosticHandlers.register(into: &handlers)
        _ = try options.connect(applicationName: "inmailq-worker", sandbox: courier == .sandbox)  // the schema must be current
        var database = try options.connectionConfiguration(applicationName: "inmailq-worker")
        database.sessionSettings = WorkerConfiguration.sessionSettings
        var settings = WorkerConfiguration(database: database)
        if options.poolMode == .transaction {
            if let directDatabaseUrl {
                var direct = database  // the same settings, a direct session
                direct.conninfo = directDatabaseUrl
                direct.transactionPooled = false
                settings.producerDatabase = direct
            } else {
                logger.warning("no --direct-database-url: through a transaction pooler the worker cannot LISTEN and polls for new jobs", metadata: [
                    "poll_interval_s": "\(pollInterval)",
                ])
            }
        } else if directDatabaseUrl != nil {
            throw ValidationError("--direct-database-url goes with --pool-mode transaction (the database URL leading to PgBouncer)")
        }
        settings.concurrency = concurrency
        if metrics.metricsListen != nil { settings.metricsSampleInterval = .milliseconds(Int(metrics.metricsInterval * 1000)) }
        let pool = ConnectionPool(database, capacity: settings.sessions)
        let delivery: any Courier = courier == .gateway ? try gatewayCourier(pool: pool, logger: logger) : SandboxCourier(pool: pool)
        defer { (delivery as? GatewayCourier)?.client.shutdown() }
        InMailHandlers.register(into: &handlers, courier: delivery, metricsSampleInterval: settings.metricsSampleInterval)
        WorkerFaults.apply(to: &handlers)
        settings.kinds = kinds.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        settings.lease = .milliseconds(Int(lease * 1000))
        settings.pollInterval = .milliseconds(Int(pollInterval * 1000))
        settings.shutdownDeadline = .milliseconds(Int(shutdownDeadline * 1000))
        settings.retryBase = .milliseconds(Int(retryBase * 1000))
        settings.retention = .seconds(retentionDays * 86_400)
        settings.exitWhenDone = exitWhenDone
        let worker: Worker
        do {
            worker = try Worker(configuration: settings, handlers: handlers, pool: pool, logger: logger)
        } catch let error as WorkerError {
            throw ValidationError(error.description)
        }
        // The first SIGTERM or SIGINT shuts the group down gracefully (the worker drains); a
        // second cancels it (the worker releases its running jobs at once). A worker that ends by
        // itself (--exit-when-done) shuts the rest of the group down gracefully.
        // The metrics server, when on, stops with the group.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)]
                + (metricsServer.map { [.init(service: $0)] } ?? []),
            logger: logger))
        let running = Task { try await group.run() }
        let signals = ShutdownSignals(
            first: { Task { await group.triggerGracefulShutdown() } },
            again: { running.cancel() })
        try await running.value
        withExtendedLifetime(signals) {}
    }
}

/// Turns SIGTERM and SIGINT into calls on a background queue: `first` for the first signal,
/// `again` for every later one.
final class ShutdownSignals {
    private let sources: [any DispatchSourceSignal]

    init(first: @escaping @Sendable () -> Void, again: @escaping @Sendable () -> Void) {
        let received = SignalCount()
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if received.next() == 1 { first() } else { again() }
            }
            source.resume()
            return source
        }
    }
}

/// How many shutdown signals arrived, counted from any thread.
private final class SignalCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one more signal and returns the new count.
    func next() -> Int {
        count.add(1, ordering: .relaxed).newValue
    }
}
