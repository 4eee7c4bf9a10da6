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
    private let http: HTTPClient

    init(databaseURL: String, port: Int = 0, environment: [String: String] = [:], arguments: [String] = []) throws {
        (process, url) = try InmailqProcess.startListening(
            ["serve", "--database-url", databaseURL, "--listen", "127.0.0.1:\(port)", "--log-level", "warning"] + arguments,
            environment: environment.merging(["INMAILQ_WEBHOOK_SECRET": Self.secret]) { $1 }, announcement: "inmailq serve listening on ")
        http = HTTPClient(eventLoopGroupProvider: .singleton)  // after the start: a failed start leaves no client to shut down
    }

    deinit {
        process.stop()
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
