import Console
import Foundation
import HTTPTypes
import Hummingbird
import InMail
import Logging
import Metrics
import NIOCore
import Postgres
import ServiceLifecycle

/// What `inmailq serve` is told.
public struct ServerSettings: Sendable {
    public var host: String
    public var port: Int
    /// The header the gateway sends with every webhook (set when the webhook was registered).
    public var secretHeader: String
    /// Its value; compared in constant time.
    public var secret: String
    /// Larger webhook bodies are refused with 413 before they are read whole.
    public var maxBodyBytes: Int
    /// Fault injection for tests: the process kills itself right after the first commit,
    /// before answering (as a crash between storing and acknowledging would).
    public var dieAfterFirstCommit = false

    public init(host: String, port: Int, secretHeader: String, secret: String, maxBodyBytes: Int) {
        self.host = host
        self.port = port
        self.secretHeader = secretHeader
        self.secret = secret
        self.maxBodyBytes = maxBodyBytes
    }
}

/// inmailq's HTTP face: the gateway's webhooks into the inbox, and probes for load balancers.
///
///     POST /webhooks/gateway   a webhook: 200 once stored (or already stored: a replay),
///                              401 wrong or missing secret, 400 malformed, 413 too large,
///                              503 database unavailable (the gateway retries later)
///     GET  /healthz            200 while the process runs
///     GET  /readyz             200 when the database answers and its schema is current, else 503
///     /console/...             the operators' console (see `Console`), when given one
///
/// Every answer carries `X-Request-ID` (the caller's, or a new one) and is logged as one access
/// line; header values (the secret among them) are never logged. Any number of these servers
/// may run behind a load balancer: they share only the database.
public final class WebhookServer: Sendable {
    public static let webhookPath = "/webhooks/gateway"

    let settings: ServerSettings
    let writer: InboxWriter
    let readiness: @Sendable () async -> String?
    let console: Console?
    let logger: Logger

    /// A server storing webhooks through `writer`; `readiness` answers nil when ready, or why not.
    /// With `console`, it also serves the operators' console under /console.
    public init(settings: ServerSettings, writer: InboxWriter, readiness: @escaping @Sendable () async -> String?,
                console: Console? = nil, logger: Logger) {
        self.settings = settings
        self.writer = writer
        self.readiness = readiness
        self.console = console
        self.logger = logger
    }

    /// The server as a service to run in the process's service group (it serves until the group
    /// shuts down); `onListening` gets the bound port.
    public func service(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> any Service {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(AccessLog(logger: logger))
        router.post(RouterPath(Self.webhookPath)) { request, _ in try await self.webhook(request) }
        router.get("/healthz") { _, _ in Self.json(.ok, ["status": "up"]) }
        router.get("/readyz") { _, _ in
            if let reason = await self.readiness() {
                return Self.json(.serviceUnavailable, ["status": "not ready", "reason": reason])
            }
            return Self.json(.ok, ["status": "ready"])
        }
        console?.register(on: router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "inmailq"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? self.settings.port) },
            logger: logger)
    }

    /// Counts webhooks by what became of them: `inmailq_webhooks_total{outcome}`, outcome one of
    /// stored, duplicate, unauthorized, too_large, malformed, refused, unavailable.
    private func webhook(_ request: Request) async throws -> Response {
        let (outcome, response) = try await handleWebhook(request)
        Counter(label: "inmailq_webhooks_total", dimensions: [("outcome", outcome)]).increment()
        return response
    }

    private func handleWebhook(_ request: Request) async throws -> (String, Response) {
        guard let given = request.headers[HTTPField.Name(settings.secretHeader)!],
              Console.constantTimeEqual(given, settings.secret)
        else {
            return ("unauthorized", Self.json(.unauthorized, ["error": "missing or wrong \(settings.secretHeader) header: nothing stored"]))
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: settings.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return ("too_large", Self.json(.contentTooLarge, ["error": "the body is larger than \(settings.maxBodyBytes) bytes: nothing stored"]))
        }
        let payload: JSONText
        do {
            payload = try Inbox.payload(body.readableBytesView)
        } catch {
            return ("malformed", Self.json(.badRequest, ["error": "\(error): nothing stored"]))
        }
        do {
            let received = try await writer.store(payload)
            if settings.dieAfterFirstCommit && received.stored { kill(getpid(), SIGKILL) }
            let outcome = received.stored ? "stored" : "duplicate"
            return (outcome, Self.json(.ok, ["status": outcome, "inbox_id": received.inboxID.map { "\($0)" } ?? ""]))
        } catch InboxWriter.Failure.refused(let reason) {
            return ("refused", Self.json(.badRequest, ["error": "the database refused the event (\(reason)): nothing stored"]))
        } catch {
            logger.warning("webhook not stored", metadata: ["error": "\(error)"])
            return ("unavailable", Self.json(.serviceUnavailable, ["error": "the database is unavailable: retry later"]))
        }
    }

    static func json(_ status: HTTPResponse.Status, _ fields: [String: String]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

}

/// One structured line per request: method, path, status, duration, sizes and request id. The
/// request id is the caller's `X-Request-ID` when it sends a plausible one, else a new one; it
/// is echoed in the answer.
struct AccessLog: RouterMiddleware {
    typealias Context = BasicRequestContext
    let logger: Logger
    static let requestIDHeader = HTTPField.Name("X-Request-ID")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let given = request.headers[Self.requestIDHeader]
        let requestID = given.flatMap { $0.count <= 100 && $0.allSatisfy { $0.isLetter || $0.isNumber || "-_.:".contains($0) } ? $0 : nil }
            ?? String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = Response(status: error.status)
        } catch {
            logger.error("request failed", metadata: ["request_id": "\(requestID)", "error": "\(error)"])
            response = Response(status: .internalServerError)
        }
        response.headers[Self.requestIDHeader] = requestID
        let elapsed = ContinuousClock.now - started
        logger.info("request", metadata: [
            "request_id": "\(requestID)", "method": "\(request.method.rawValue)", "path": "\(request.uri.path)",
            "status": "\(response.status.code)", "duration_ms": "\(String(format: "%.2f", elapsed.milliseconds))",
            "bytes_in": "\(request.headers[.contentLength] ?? "-")",
        ])
        return response
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1_000 + Double(attoseconds) / 1e15
    }
}
