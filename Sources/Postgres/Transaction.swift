import Foundation

/// How often a transaction is run again when it fails with a retryable error.
public struct RetryPolicy: Sendable {
    /// Total runs allowed, the first included.
    public var maxAttempts: Int
    /// Wait before the second run; doubles each time, with jitter.
    public var baseDelay: Duration

    public init(maxAttempts: Int, baseDelay: Duration = .milliseconds(20)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
    }

    /// Run once; a failure is thrown as it is.
    public static let never = RetryPolicy(maxAttempts: 1)
    /// Up to five runs on serialization failures, deadlocks, lost connections and the like.
    public static let retryable = RetryPolicy(maxAttempts: 5)

    func delay(beforeAttempt attempt: Int) -> Duration {
        let factor = Double(1 << min(attempt - 2, 10))
        return baseDelay * (factor * Double.random(in: 0.5...1.5))
    }
}

extension Connection {
    /// Runs `body` inside `BEGIN ... COMMIT`: commits when it returns, rolls back when it throws.
    /// Under `retry`, the whole body runs again (in a new transaction) after a retryable error,
    /// including a lost connection or a serialization failure at COMMIT; `body` must therefore
    /// have no effects outside the database, or effects that are safe to repeat.
    @discardableResult
    public func transaction<T>(retry: RetryPolicy = .never, _ body: (Connection) throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try transactionOnce(body)
            } catch let error as PostgresError where error.isRetryable && attempt < retry.maxAttempts {
                attempt += 1
                Thread.sleep(forTimeInterval: retry.delay(beforeAttempt: attempt).seconds)
            }
        }
    }

    private func transactionOnce<T>(_ body: (Connection) throws -> T) throws -> T {
        try reconnectIfBroken()
        guard !isInTransaction else {
            throw PostgresError(kind: .usage, message: "a transaction is already open on this connection")
        }
        try execute("begin")
        let value: T
        do {
            transactionBodyRunning = true
            defer { transactionBodyRunning = false }
            value = try body(self)
        } catch {
            rollbackQuietly()
            throw error
        }
        do {
            try execute("commit")
        } catch {
            rollbackQuietly()
            throw error
        }
        return value
    }

    /// Ends an open transaction after a failure; a broken connection has already ended it.
    func rollbackQuietly() {
        guard isConnected, isInTransaction else { return }
        _ = try? execute("rollback")
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
