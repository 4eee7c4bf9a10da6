import ArgumentParser
import Foundation
import Gateway

/// The gateway's URL and API key from the environment (`INMAILQ_GATEWAY_URL`,
/// `INMAILQ_GATEWAY_API_KEY`) or a key file, so the key is never an argument `ps` shows.
enum GatewaySettings {
    static let urlVariable = "INMAILQ_GATEWAY_URL"
    static let apiKeyVariable = "INMAILQ_GATEWAY_API_KEY"

    /// The configuration, or one line saying what is missing or wrong (never the key itself).
    static func configuration(apiKeyFile: String?) throws -> GatewayConfiguration {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment[urlVariable], !url.isEmpty else {
            throw ValidationError("the gateway's base URL is needed in \(urlVariable) (e.g. https://api8.unipile.com:13851)")
        }
        guard let key = try Secret.read(file: apiKeyFile, variable: apiKeyVariable, what: "gateway API key") else {
            throw ValidationError("the gateway's API key is needed in \(apiKeyVariable) or a key file (--gateway-api-key-file)")
        }
        do {
            return try GatewayConfiguration(baseURL: url, apiKey: key)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// The secret the gateway sends with every webhook (the header set when the webhook was
/// registered): from `INMAILQ_WEBHOOK_SECRET` or a file, never an argument `ps` shows.
enum WebhookSecret {
    static let variable = "INMAILQ_WEBHOOK_SECRET"
    /// The header it travels in unless told otherwise.
    static let defaultHeader = "Unipile-Auth"

    static func read(file: String?) throws -> String {
        let secret = try Secret.read(file: file, variable: variable, what: "webhook secret") ?? ""
        guard secret.count >= 16 else {
            throw ValidationError(
                "a webhook secret of at least 16 characters is needed in \(variable) or --webhook-secret-file (got \(secret.count))")
        }
        return secret
    }
}

/// A secret (a key, a shared secret) from a file or, without one, from an environment variable,
/// so it is never an argument `ps` shows.
enum Secret {
    /// The file's text or the variable's value, trimmed; nil when neither gives one. `what`
    /// names the secret when its file cannot be read.
    static func read(file: String?, variable: String, what: String) throws -> String? {
        let text: String?
        if let file {
            guard let contents = FileManager.default.contents(atPath: file), let read = String(data: contents, encoding: .utf8) else {
                throw ValidationError("cannot read the \(what) file \(file)")
            }
            text = read
        } else {
            text = ProcessInfo.processInfo.environment[variable]
        }
        let secret = text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return secret.isEmpty ? nil : secret
    }
}
