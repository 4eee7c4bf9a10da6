import ArgumentParser
import Foundation
import GatewayDouble

/// `inmailq gateway-double`: a local stand-in for the LinkedIn gateway's API, for demos and tests.
struct GatewayDoubleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-double",
        abstract: "Serve a local double of the LinkedIn gateway's API (for demos and tests).",
        discussion: """
            Speaks the subset of the gateway's API (Unipile API v1) that `worker --courier gateway` \
            uses, at the same paths, with the same fields, status codes and error bodies, and keeps \
            every message it accepted. Each account gets --credits InMail credits per product until \
            told otherwise. The API key is read from INMAILQ_GATEWAY_API_KEY (or --api-key-file), \
            as the worker reads it.

            A control API under /_double/ (no key) sets accounts, members and faults and reads what \
            arrived: GET /_double/messages, GET /_double/requests, PUT /_double/accounts/{id}, \
            PUT /_double/members/{identifier}, PUT /_double/faults (e.g. {"next": ["drop_after_send"], \
            "rates": {"server_error": 0.05}, "latency_ms": 200}), POST /_double/chats/{id}/reply (the \
            member answers), GET /_double/webhooks.

            It POSTs the gateway's webhooks as JSON to those registered with POST /api/v1/webhooks \
            (`inmailq gateway register-webhook`), or given with --webhook-url: message_received for \
            every message of a chat (the account's own too: its sender is the account's own member) \
            and AccountStatus when an account is disconnected, restricted or back; each carries the \
            headers set at registration (--webhook-header) and is retried five times, with a \
            doubling delay, until answered 200.

            Runs until SIGTERM or SIGINT.
            """
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen: String = "127.0.0.1:8790"

    @Option(help: ArgumentHelp("A file holding the API key clients must send.", valueName: "path"))
    var apiKeyFile: String?

    @Option(help: "InMail credits of each product for an account the double was not told about.")
    var credits: Int = 1_000

    @Option(help: "Seed of the random faults.")
    var seed: UInt64 = 1

    @Option(help: "Milliseconds added to every answer (a gateway's latency).")
    var latencyMs: Int = 0

    @Option(help: ArgumentHelp("Where to POST the gateway's webhooks (new messages, the account's own included; account status).", valueName: "url"))
    var webhookUrl: String?

    @Option(help: ArgumentHelp("The header sent with every webhook, as set when a webhook is registered.", valueName: "Name: value"))
    var webhookHeader: String = "Unipile-Auth: inmailq-double"

    func validate() throws {
        guard webhookHeader.contains(":") else { throw ValidationError("--webhook-header must be 'Name: value' (got \(webhookHeader))") }
        try requireInRange(latencyMs, 0...60_000, "--latency-ms")
        try requireInRange(credits, 0...1_000_000, "--credits")
        _ = try listenAddress(listen)
    }

    func run() async throws {
        guard let key = try Secret.read(file: apiKeyFile, variable: GatewaySettings.apiKeyVariable, what: "API key") else {
            throw ValidationError("the double needs an API key: \(GatewaySettings.apiKeyVariable) or --api-key-file")
        }
        let (host, port) = try listenAddress(listen)
        let parts = webhookHeader.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        let webhooks = webhookUrl.map { url in
            ["messaging", "account_status"].map { source in
                WebhookTarget(id: "whk_\(source)", source: source, url: url, name: "inmailq",
                              headers: [("Content-Type", "application/json"), (parts[0], parts[1])])
            }
        } ?? []
        let server = GatewayDoubleServer(
            apiKey: key, defaultAccount: DoubleAccount(premium: credits, salesNavigator: credits, recruiter: credits), seed: seed,
            webhooks: webhooks)
        defer { server.shutdown() }
        var faults = GatewayFaults()
        faults.latencyMilliseconds = latencyMs
        server.setFaults(faults)
        let task = Task {
            try await server.run(host: host, port: port) { bound in
                FileHandle.standardOutput.write(Data("gateway double listening on http://\(host):\(bound)\n".utf8))
            }
        }
        let signals = ShutdownSignals(first: { task.cancel() }, again: { task.cancel() })
        do {
            try await task.value
        } catch is CancellationError {}
        withExtendedLifetime(signals) {}
    }
}
