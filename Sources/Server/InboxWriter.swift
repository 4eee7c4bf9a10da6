import Foundation
import InMail
import Logging
import Postgres

/// Stores webhooks in the inbox for concurrent requests: each request hands its payload over and
/// waits; a few writer threads, each with its own database session, take what has arrived
/// meanwhile and store it in one transaction (`Inbox.receive`), then answer every request of
/// the batch once it is committed. Committing many webhooks at once is what lets one process
/// accept thousands a second without giving up "acknowledged only after commit"; the workers
/// are woken after the commit, outside it, so concurrent commits can share a WAL flush.
public final class InboxWriter: Sendable {
    /// Why a webhook could not be stored.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The database is unreachable or failed: answer 503 so the gateway retries later.
        case unavailable(String)
        /// The database refused this payload itself (e.g. a text it cannot hold): answer 400.
        case refused(String)

        public var description: String {
            switch self {
            case .unavailable(let reason): "database unavailable: \(reason)"
            case .refused(let reason): "the database refused the event: \(reason)"
            }
        }
    }

    private struct Item {
        let payload: JSONText
        let answer: CheckedContinuation<Inbox.Received, any Error>
    }

    private let queue = HandOff<Item>()
    private let configuration: ConnectionConfiguration
    private let logger: Logger
    private let maxBatch: Int

    /// Starts `writers` writer threads on sessions opened with `configuration`, each storing
    /// at most `maxBatch` webhooks per transaction.
    public init(configuration: ConnectionConfiguration, writers: Int, maxBatch: Int = 500, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.maxBatch = maxBatch
        for index in 0..<max(1, writers) {
            let thread = Thread { [self] in writeLoop() }
            thread.name = "inbox-writer-\(index)"
            thread.start()
        }
    }

    /// Stores `payload`; returns once the transaction holding it is committed.
    public func store(_ payload: JSONText) async throws -> Inbox.Received {
        try await withCheckedThrowingContinuation { answer in
            switch queue.put(Item(payload: payload, answer: answer)) {
            case .accepted: break
            case .full: answer.resume(throwing: Failure.unavailable("\(HandOff<Item>.capacity) webhooks already wait for the database"))
            case .closed: answer.resume(throwing: Failure.unavailable("the server is shutting down"))
            }
        }
    }

    /// Lets the writers finish what they hold, then stop.
    public func close() {
        queue.close()
    }

    private func writeLoop() {
        var connection: Connection?
        while let batch = queue.take(max: maxBatch) {
            do {
                if connection == nil { connection = try Connection(configuration) }
                try connection!.reconnectIfBroken()
            } catch {
                connection = nil
                logger.warning("inbox writer cannot reach the database", metadata: ["error": "\(error)"])
                for item in batch { item.answer.resume(throwing: Failure.unavailable("\(error)")) }
                continue
            }
            write(batch, on: connection!)
        }
        connection = nil
    }

    /// One transaction for the batch; when the database refuses it for a payload's content, each
    /// is tried alone, so one bad event does not keep the others out.
    private func write(_ batch: [Item], on connection: Connection) {
        do {
            let received = try connection.transaction { try Inbox.receive(batch.map(\.payload), wakeWorkers: false, on: $0) }
            for (item, result) in zip(batch, received) { item.answer.resume(returning: result) }
            // Workers wake now rather than at their next poll; losing this only costs that poll.
            _ = try? connection.execute("select queue_notify('inbox')", prepared: true)
        } catch let error as PostgresError where error.kind == .server && error.sqlState?.hasPrefix("22") == true {
            if batch.count == 1 {
                batch[0].answer.resume(throwing: Failure.refused(error.message))
            } else {
                for item in batch { write([item], on: connection) }
            }
        } catch {
            logger.warning("inbox writer could not store a batch", metadata: ["error": "\(error)", "events": "\(batch.count)"])
            for item in batch { item.answer.resume(throwing: Failure.unavailable("\(error)")) }
        }
    }
}

/// A queue between async request handlers and blocking writer threads: `put` never blocks
/// (and refuses past `capacity`, so a database that stalls costs 503s, not memory); `take`
/// waits until something arrives, then returns all that is there (up to `max`), or nil once
/// closed and drained.
final class HandOff<Element>: @unchecked Sendable {
    static var capacity: Int { 20_000 }

    enum Put { case accepted, full, closed }

    private let condition = NSCondition()
    private var items: [Element] = []
    private var closed = false

    func put(_ item: Element) -> Put {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return .closed }
        guard items.count < Self.capacity else { return .full }
        items.append(item)
        condition.signal()
        return .accepted
    }

    func take(max: Int) -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        let count = min(max, items.count)
        let batch = Array(items.prefix(count))
        items.removeFirst(count)
        if !items.isEmpty { condition.signal() }
        return batch
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
