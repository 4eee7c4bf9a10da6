import ArgumentParser
import Console
import Foundation
import InMail
import Logging
import Postgres
import Server
import ServiceLifecycle

/// `inmailq serve`: the HTTP face — the gateway's webhooks into the inbox, and health probes.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Take the gateway's webhooks (replies, account status) into the database, exactly once.",
        discussion: """
            POST /webhooks/gateway: each webhook is stored in the inbox (gateway_inbox) in one \
            transaction and answered 200 only after the commit; a worker's inbox.process job then \
            applies it (responses, credit back, stopped sequences, paused accounts). A replayed \
            webhook changes nothing. Wrong or missing secret: 401, nothing stored. Malformed \
            JSON: 400. Body over --max-body-bytes: 413. Database unavailable: 503, so the gateway \
            retries later.

            GET /console: the operators' console, a read-only web page per agency (sign in with a \
            login made by `inmailq console add-login`). Its cookies are marked Secure (HTTPS only) \
            unless serve listens on a loopback address; put it behind TLS to reach it from elsewhere. \
            --no-console leaves it out.

            GET /healthz answers 200 while the process runs; GET /readyz answers 200 when the \
            database answers and its schema is current, else 503.

            The secret is the value of the header (--webhook-header) given when the webhook was \
            registered (`inmailq gateway register-webhook`): from INMAILQ_WEBHOOK_SECRET or \
            --webhook-secret-file, at least 16 characters. Run as many as you like behind a load \
            balancer: they share only the database. SIGTERM or SIGINT: stop accepting, finish \
            the requests under way, exit 0. With --metrics-listen, Prometheus metrics (webhooks by \
            outcome, inmailq_webhooks_total) on an address of their own.
            """
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var metrics: MetricsOptions

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen: String = "127.0.0.1:8080"

    @Option(help: ArgumentHelp("A file holding the webhook secret (instead of INMAILQ_WEBHOOK_SECRET).", valueName: "path"))
    var webhookSecretFile: String?

    @Option(help: ArgumentHelp("The header the gateway sends the secret in.", valueName: "name"))
    var webhookHeader: String = WebhookSecret.defaultHeader

    @Option(help: "Largest webhook body accepted, in bytes.")
    var maxBodyBytes: Int = 1 << 20

    @Option(help: "Database sessions storing webhooks; each stores all that arrived meanwhile in one transaction (one was fastest on 2 cores).")
    var dbWriters: Int = 1

    @Flag(inversion: .prefixedNo, help: "Serve the operators' console under /console.")
    var console = true

    func validate() throws {
        _ = try listenAddress(listen)
        try requireInRange(maxBodyBytes, 1_024...(64 << 20), "--max-body-bytes")
        try requireInRange(dbWriters, 1...64, "--db-writers")
        guard !webhookHeader.isEmpty, webhookHeader.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw ValidationError("--webhook-header must be a header name such as Unipile-Auth (got \(webhookHeader))")
        }
    }

    func run() async throws {
        let logger = options.makeLogger("serve")
        let metricsServer = try metrics.service(process: "serve", logger: logger)  // before anything records a metric
        let secret = try WebhookSecret.read(file: webhookSecretFile)
        _ = try options.connect(applicationName: "inmailq-serve", sandbox: true)  // the schema must be current
        let database = try options.connectionConfiguration(applicationName: "inmailq-serve")
        let migrator = try SQLFiles.shippedMigrator(sandbox: options.usesLocalCluster)
        let (host, port) = try listenAddress(listen)
        let writer = InboxWriter(configuration: database, writers: dbWriters, logger: logger)
        defer { writer.close() }
        var settings = ServerSettings(host: host, port: port, secretHeader: webhookHeader, secret: secret, maxBodyBytes: maxBodyBytes)
        // Fault injection for the tests of a crash between storing a webhook and answering it.
        settings.dieAfterFirstCommit = ProcessInfo.processInfo.environment["INMAILQ_FAULT_DIE_AFTER_COMMIT"] == "1"
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host)
        let consolePages = console ? try Console(database: database, settings: ConsoleSettings(secureCookies: !loopback), logger: logger) : nil
        let server = WebhookServer(
            settings: settings, writer: writer, readiness: { await Self.readiness(database, migrator) }, console: consolePages,
            logger: logger)
        let webhooks = server.service { bound in
            logger.info("serving", metadata: ["address": "http://\(host):\(bound)", "webhook": "\(WebhookServer.webhookPath)"])
            FileHandle.standardOutput.write(Data("inmailq serve listening on http://\(host):\(bound)\n".utf8))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: webhooks)] + (metricsServer.map { [.init(service: $0)] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Nil when the database answers and its schema is current; otherwise why not. Runs off the
    /// server's event loops (libpq blocks).
    static func readiness(_ database: ConnectionConfiguration, _ migrator: Migrator) async -> String? {
        await withCheckedContinuation { answer in
            DispatchQueue.global().async {
                do {
                    let connection = try Connection(database)
                    let pending = try migrator.pending(connection)
                    let names = (pending.versioned + pending.repeatable).map(\.description)
                    answer.resume(returning: names.isEmpty ? nil : "schema not current (pending: \(names.joined(separator: ", ")))")
                } catch {
                    answer.resume(returning: "database unreachable: \(error)")
                }
            }
        }
    }
}
