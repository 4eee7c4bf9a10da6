import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `inmailq serve` as a child process (on a free port unless given one), posted to over real
/// HTTP; stopped when released.
final class ServeProcess {
    static let secret = "serve-secret-\(UInt64.random(in: 0...UInt64.max))"

    let process: InmailqProcess
    let url: String
    private let http = HTTPClient(eventLoopGroupProvider: .singleton)

    init(databaseURL: String, port: Int = 0, environment: [String: String] = [:], arguments: [String] = []) throws {
        var environment = environment
        environment["INMAILQ_WEBHOOK_SECRET"] = Self.secret
        let process = try InmailqProcess.start(
            ["serve", "--database-url", databaseURL, "--listen", "127.0.0.1:\(port)", "--log-level", "warning"] + arguments,
            environment: environment)
        self.process = process
        let prefix = "inmailq serve listening on "
        var found: String?
        _ = eventually(timeout: .seconds(30), every: 0.02) {
            found = process.output.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            return found != nil || process.child.exitStatusIfEnded() != nil
        }
        guard let found else {
            try? http.syncShutdown()
            process.child.signal(SIGKILL)
            _ = process.child.wait()
            throw DoubleProcessError(message: "inmailq serve did not start: \(process.output)")
        }
        url = found
    }

    deinit {
        if process.child.exitStatusIfEnded() == nil {
            process.child.signal(SIGTERM)
            if process.wait(timeout: .seconds(10)) == nil {
                process.child.signal(SIGKILL)
                _ = process.child.wait()
            }
        }
        try? http.syncShutdown()
    }

    var webhookURL: String { url + "/webhooks/gateway" }
    var port: Int { Int(url.split(separator: ":").last!)! }

    /// POSTs a webhook body with the secret (or `secret`, or no header when nil is asked).
    @discardableResult
    func post(_ body: String, secret: String?? = .some(ServeProcess.secret), headers: [(String, String)] = [])
        throws -> (status: Int, body: String)
    {
        var all = HTTPHeaders(headers)
        if case .some(.some(let value)) = secret { all.add(name: "Unipile-Auth", value: value) }
        return try send(.POST, "/webhooks/gateway", headers: all, body: Data(body.utf8))
    }

    func get(_ path: String) throws -> (status: Int, body: String) {
        try send(.GET, path, headers: [:], body: nil)
    }

    private func send(_ method: HTTPMethod, _ path: String, headers: HTTPHeaders, body: Data?) throws -> (status: Int, body: String) {
        let request = try HTTPClient.Request(url: url + path, method: method, headers: headers, body: body.map { .data($0) })
        let response = try http.execute(request: request, deadline: .now() + .seconds(30)).wait()
        return (Int(response.status.code), response.body.map { String(buffer: $0) } ?? "")
    }
}
