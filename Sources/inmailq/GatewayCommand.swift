import ArgumentParser
import Foundation
import Gateway

/// `inmailq gateway ...`: set-up calls to the LinkedIn gateway's API.
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Set-up calls to the LinkedIn gateway (INMAILQ_GATEWAY_URL, INMAILQ_GATEWAY_API_KEY).",
        subcommands: [RegisterWebhook.self]
    )

    struct RegisterWebhook: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "register-webhook",
            abstract: "Register inmailq serve's URL with the gateway for new messages and account status.",
            discussion: """
                Registers one webhook per source (messaging: new messages, replies among them; \
                account_status: disconnections and reconnections) at the gateway's documented \
                endpoint (POST /api/v1/webhooks), each sending the secret in --webhook-header on \
                every delivery; the secret comes from INMAILQ_WEBHOOK_SECRET or \
                --webhook-secret-file, as `inmailq serve` reads it.

                Safe to run again: a source that already has a webhook to the same URL is left \
                as it is. When the gateway does not answer a registration, the list is read \
                again before anything is repeated. Prints one line per source: its webhook id, \
                and whether it was registered now or already. Exit status 1 on failure.
                """
        )

        @Option(help: ArgumentHelp("The public URL of inmailq serve's webhook endpoint.", valueName: "url"))
        var url: String

        @Option(help: ArgumentHelp("Comma-separated sources to register.", valueName: "sources"))
        var sources: String = "messaging,account_status"

        @Option(help: "The webhook's name at the gateway (it comes back in each payload).")
        var name: String = "inmailq"

        @Option(help: ArgumentHelp("The header the secret travels in.", valueName: "name"))
        var webhookHeader: String = WebhookSecret.defaultHeader

        @Option(help: ArgumentHelp("A file holding the webhook secret (instead of INMAILQ_WEBHOOK_SECRET).", valueName: "path"))
        var webhookSecretFile: String?

        @Option(help: ArgumentHelp("A file holding the gateway's API key (instead of INMAILQ_GATEWAY_API_KEY).", valueName: "path"))
        var gatewayApiKeyFile: String?

        var sourceList: [String] { sources.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

        func validate() throws {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw ValidationError("--url must be an http:// or https:// URL (got \(url))")
            }
            for source in sourceList where !["messaging", "account_status"].contains(source) {
                throw ValidationError("--sources takes messaging and account_status (got \(source))")
            }
        }

        func run() throws {
            let secret = try WebhookSecret.read(file: webhookSecretFile)
            let client = GatewayClient(try GatewaySettings.configuration(apiKeyFile: gatewayApiKeyFile))
            defer { client.shutdown() }
            for source in sourceList {
                func existing() throws -> GatewayWebhook? {
                    do {
                        return try client.webhooks().first { $0.source == source && $0.url == url }
                    } catch {
                        throw CommandFailure("could not list the gateway's webhooks: \(error)")
                    }
                }
                if let found = try existing() {
                    print("\(source): \(found.id) already registered for \(url)")
                    continue
                }
                do {
                    let id = try client.registerWebhook(
                        url: url, source: source, name: name, headers: [("Content-Type", "application/json"), (webhookHeader, secret)])
                    print("\(source): \(id) registered for \(url)")
                } catch {
                    // It may have been registered although no answer came: look before saying so.
                    if case .noAnswer = error, let found = try existing() {
                        print("\(source): \(found.id) registered for \(url)")
                        continue
                    }
                    throw CommandFailure("the gateway did not register the \(source) webhook: \(error)")
                }
            }
        }
    }
}
