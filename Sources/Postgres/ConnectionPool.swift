import Dispatch
import Foundation
import Synchronization

/// The sessions of one process: opened on demand, at most `capacity` at once, and reused.
///
/// Ownership: a checked-out `Connection` belongs to the one thread that checked it out until it
/// is checked in, after which that thread must not touch it. The pool keeps idle connections
/// under its lock; that is the only place a connection passes from one thread to another.
/// Thread-safe.
public final class ConnectionPool: Sendable {
    public let configuration: ConnectionConfiguration
    /// The most sessions open at once.
    public let capacity: Int
    /// How long a check-out waits for a free session before it fails.
    public let checkoutTimeout: Duration

    /// An idle connection in the pool's keeping. Unchecked: it is used by no thread while it is
    /// here, and leaves only through `checkOut`, to one thread.
    private struct Idle: @unchecked Sendable {
        let connection: Connection
    }

    private let idle = Mutex<[Idle]>([])
    private let slots: DispatchSemaphore

    public init(_ configuration: ConnectionConfiguration, capacity: Int, checkoutTimeout: Duration = .seconds(30)) {
        self.configuration = configuration
        self.capacity = max(1, capacity)
        self.checkoutTimeout = checkoutTimeout
        // Created empty and filled: libdispatch traps when a semaphore is freed below the value
        // it was created with, and a pool may go away with sessions still checked out.
        slots = DispatchSemaphore(value: 0)
        for _ in 0..<self.capacity { slots.signal() }
    }

    /// A session for this thread: an idle one (reconnected if it broke), or a new one while fewer
    /// than `capacity` are open. Waits up to `checkoutTimeout` when all are in use, then throws a
    /// `.connection` error saying so. Hand it back with `checkIn`. With `applicationName`, a new
    /// session that names its role in `pg_stat_activity` (for a thread that keeps it for life).
    public func checkOut(applicationName: String? = nil) throws(PostgresError) -> Connection {
        guard slots.wait(timeout: .now() + checkoutTimeout.seconds) == .success else {
            throw PostgresError(
                kind: .connection,
                message: "all \(capacity) sessions of the connection pool stayed in use for \(checkoutTimeout.seconds) s")
        }
        if applicationName == nil, let parked = idle.withLock({ $0.popLast() }) {
            return parked.connection
        }
        var settings = configuration
        if let applicationName { settings.applicationName = applicationName }
        do {
            return try Connection(settings)
        } catch {
            slots.signal()
            throw error
        }
    }

    /// Returns a session checked out of this pool. One inside a transaction or broken is closed
    /// instead of kept.
    public func checkIn(_ connection: Connection) {
        park(connection)
    }

    /// Runs `body` with a session checked out for its duration (`body` must not keep it).
    public func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let connection = try checkOut()
        defer { park(connection) }
        return try body(connection)
    }

    private func park(_ connection: Connection) {
        if connection.isConnected && !connection.isInTransaction {
            let parked = Idle(connection: connection)
            idle.withLock { $0.append(parked) }
        }
        slots.signal()
    }
}
