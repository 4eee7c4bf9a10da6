import Foundation
import Postgres
import Queue

/// The gateway's webhooks, kept in the `gateway_inbox` table as they arrived, and the job
/// (`inbox.process`) that turns each into domain changes: responses (R1-R5), the member's other
/// sequences stopped, accounts paused or resumed. See `sql/inbox/`.
public enum Inbox {
    /// The job that applies stored webhooks (`inbox_process`), one batch as stored together.
    public static let processKind = "inbox.process"

    struct Args: Codable {
        let inbox_ids: [Int64]
    }

    /// What storing one webhook did.
    public struct Received: Sendable, Equatable {
        /// The inbox row (nil only when a concurrent request stored the same event a moment before).
        public let inboxID: Int64?
        /// False for a replay: the event was already stored; nothing was done.
        public let stored: Bool
    }

    /// A webhook body that is not a JSON object.
    public struct MalformedEvent: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The body as JSON text for `receive`, or why it is not a JSON object (one line).
    public static func payload(_ body: some Collection<UInt8>) throws(MalformedEvent) -> JSONText {
        let data = Data(body)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            let reason = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "not valid JSON"
            let line = reason.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: CharacterSet(charactersIn: ". "))
            throw MalformedEvent(description: "malformed JSON: \(line)")
        }
        guard object is [String: Any] else { throw MalformedEvent(description: "malformed event: the body must be a JSON object") }
        guard let text = String(data: data, encoding: .utf8) else { throw MalformedEvent(description: "malformed JSON: not UTF-8") }
        return JSONText(text)
    }

    /// Stores webhook payloads, in order, and enqueues one job for the new ones, in `connection`'s
    /// current transaction (the caller acknowledges them after its commit). With `wakeWorkers`
    /// false the caller wakes them after its commit (`queue_notify`) instead of the commit doing it.
    public static func receive(_ payloads: [JSONText], wakeWorkers: Bool = true, on connection: Connection) throws -> [Received] {
        try connection.query("select inbox_id, stored from inbox_receive(\(payloads)::jsonb[], \(wakeWorkers))", prepared: true).rows.map {
            Received(inboxID: try $0.decode(Int64?.self, "inbox_id"), stored: try $0.decode(Bool.self, "stored"))
        }
    }

    /// Applies one stored webhook; a second run changes nothing. Returns what it did, in words.
    @discardableResult
    public static func process(_ inboxID: Int64, on connection: Connection) throws -> String {
        try connection.queryOne("select inbox_process(\(inboxID)) as outcome").decode(String.self, "outcome")
    }

    /// The `inbox.process` handler: each event in its own transaction, so one that fails does
    /// not hold the others back; the job then fails and its retry applies what is left (the
    /// others answer "already processed"). An event still failing after the last attempt stays
    /// 'received', listed by `sql/admin/inbox.sql`.
    public static let handler: JobHandler = { job, context in
        let args = try job.args.decode(Args.self)
        var failures: [String] = []
        for inboxID in args.inbox_ids {
            do {
                let outcome = try context.connection().transaction { connection in
                    try JobQueue.requireLease(job.lease, on: connection)
                    return try process(inboxID, on: connection)
                }
                context.logger.debug("inbox event processed", metadata: ["inbox_id": "\(inboxID)", "outcome": "\(outcome)"])
            } catch let error as PostgresError where error.kind == .server {
                context.logger.warning("inbox event not processed", metadata: ["inbox_id": "\(inboxID)", "error": "\(error)"])
                failures.append("inbox event \(inboxID): \(error.message)")
            }
        }
        if !failures.isEmpty {
            throw InboxProcessingError(description: failures.joined(separator: "; "))
        }
        return .completed
    }
}

/// Events of an `inbox.process` job the database refused to apply.
struct InboxProcessingError: Error, CustomStringConvertible {
    let description: String
}
