import AsyncHTTPClient
import Foundation
import GatewayDouble
import NIOCore
import NIOHTTP1

/// `inmailq gateway-double` as a child process on a free port, set and read through its
/// control API over HTTP; stopped when released.
final class GatewayDoubleProcess {
    let process: InmailqProcess
    let url: String
    private let http: HTTPClient

    init(apiKey: String, credits: Int = 1_000, seed: UInt64 = 1, arguments: [String] = []) throws {
        (process, url) = try InmailqProcess.startListening(
            ["gateway-double", "--listen", "127.0.0.1:0", "--credits", String(credits), "--seed", String(seed)] + arguments,
            environment: ["INMAILQ_GATEWAY_API_KEY": apiKey], announcement: "gateway double listening on ")
        http = HTTPClient(eventLoopGroupProvider: .singleton)  // after the start: a failed start leaves no client to shut down
    }

    deinit {
        process.stop()
        try? http.syncShutdown()
    }

    var messages: [DoubleMessage] {
        get throws { try JSONDecoder().decode([DoubleMessage].self, from: request(.GET, "/_double/messages")) }
    }

    var requestCounts: [String: Int] {
        get throws { try JSONDecoder().decode([String: Int].self, from: request(.GET, "/_double/requests")) }
    }

    func setFaults(_ faults: GatewayFaults) throws { try put("/_double/faults", faults) }
    func setAccount(_ id: String, _ account: DoubleAccount) throws { try put("/_double/accounts/\(id)", account) }
    func setMember(_ identifier: String, _ member: DoubleMember) throws { try put("/_double/members/\(identifier)", member) }

    private func put<T: Encodable>(_ path: String, _ value: T) throws {
        _ = try request(.PUT, path, body: JSONEncoder().encode(value))
    }

    @discardableResult
    func request(_ method: HTTPMethod, _ path: String, body: Data? = nil) throws -> Data {
        let request = try HTTPClient.Request(url: url + path, method: method, body: body.map { .data($0) })
        let response = try http.execute(request: request, deadline: .now() + .seconds(30)).wait()
        let data = response.body.map { Data($0.readableBytesView) } ?? Data()
        guard response.status.code < 300 else {
            throw DoubleProcessError(message: "\(method) \(path): \(response.status.code) \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }
}

struct DoubleProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
