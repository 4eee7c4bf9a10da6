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
            throw ValidationError("--courier gateway needs the gateway's base URL in \(urlVariable) (e.g. https://api8.unipile.com:13851)")
        }
        let key: String
        if let apiKeyFile {
            guard let contents = FileManager.default.contents(atPath: apiKeyFile), let text = String(data: contents, encoding: .utf8) else {
                throw ValidationError("cannot read the gateway API key file \(apiKeyFile)")
            }
            key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let value = environment[apiKeyVariable], !value.isEmpty {
            key = value.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw ValidationError("--courier gateway needs the gateway's API key in \(apiKeyVariable) or --gateway-api-key-file")
        }
        do {
            return try GatewayConfiguration(baseURL: url, apiKey: key)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
