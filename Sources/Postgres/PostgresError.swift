/// Every failure of the client: the server's own error fields when it sent them, or what went
/// wrong on the client side (connecting, a lost connection, decoding a column).
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// Where the failure arose.
    public enum Kind: Sendable, Equatable {
        /// The server could not be reached or the connection broke.
        case connection
        /// The server rejected a statement; `sqlState` says why.
        case server
        /// A column's value could not be read as the requested Swift type.
        case decoding
        /// The client was used in a way the protocol does not allow.
        case usage
    }

    public let kind: Kind
    /// The five-character SQLSTATE, such as `23505`; nil when the server sent none.
    public let sqlState: String?
    public let message: String
    public let detail: String?
    public let hint: String?
    /// The constraint a statement violated, when the server names one.
    public let constraint: String?
    /// Where in the statement or input the error arose, e.g. `COPY t, line 3, column n`.
    public let context: String?
    /// The SQL text (never the bound values) of the statement that failed, when known.
    public let statement: String?

    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil, context: String? = nil, statement: String? = nil
    ) {
        self.context = context
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.statement = statement
    }

    /// True when running the same work again may succeed: serialization failures, deadlocks,
    /// lock timeouts, server shutdowns, too many connections, and lost connections.
    public var isRetryable: Bool {
        if kind == .connection { return true }
        guard let sqlState else { return false }
        if sqlState.hasPrefix("08") { return true }
        return Self.retryableStates.contains(sqlState)
    }

    static let retryableStates: Set<String> = [
        "40001",  // serialization_failure
        "40P01",  // deadlock_detected
        "55P03",  // lock_not_available
        "57P01",  // admin_shutdown
        "57P02",  // crash_shutdown
        "57P03",  // cannot_connect_now
        "53300",  // too_many_connections
    ]

    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// The message, detail and hint only: what a person acting on the error needs, without the
    /// SQLSTATE, constraint and the server's context (`description` has everything).
    public var summary: String {
        var text = message
        if let detail { text += "; \(detail)" }
        if let hint { text += " (\(hint))" }
        return text
    }

    public var description: String {
        var text = message
        if let sqlState { text = "\(text) (SQLSTATE \(sqlState))" }
        if let constraint { text += " [constraint \(constraint)]" }
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        if let context { text += "; where: \(context)" }
        return text
    }
}
