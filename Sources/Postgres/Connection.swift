import CLibPQ
import Foundation

/// One session with a PostgreSQL server, over libpq.
///
/// Ownership: a `Connection` is deliberately not `Sendable`. Exactly one thread or task owns it
/// at a time; create it where it is used, or hand it over with `sending`. Every libpq call for
/// this session happens on the owner's thread, so libpq's per-connection state is never shared.
///
/// A broken connection (server restart, killed backend) is noticed: the failing call throws a
/// retryable `PostgresError` of kind `.connection`, and the next call reconnects.
public final class Connection {
    /// The settings this connection was opened with (and reconnects with).
    public let configuration: ConnectionConfiguration
    var handle: OpaquePointer?
    /// Statement text -> name of the server-side prepared statement (lost on reconnect).
    private var preparedStatements: [String: String] = [:]
    /// Channels to LISTEN on again after a reconnect.
    var listeningChannels: Set<String> = []
    /// True while `transaction` runs its body: a reconnect then would silently run the rest of
    /// the body outside the transaction, so a lost connection fails every statement until then.
    var transactionBodyRunning = false
    /// Cursors opened so far, to name the next one (`forEachBatch`).
    var cursorCount = 0

    /// Connects, or throws a `.connection` error naming the host and port (never the password).
    /// A string that is neither a URL nor a conninfo is refused (libpq would take it for a
    /// database name and quietly try the default server).
    public init(_ configuration: ConnectionConfiguration) throws(PostgresError) {
        self.configuration = configuration
        guard configuration.hasReadableConninfo else {
            throw PostgresError(
                kind: .usage,
                message: "the connection string is neither a postgresql:// URL nor a key=value conninfo (e.g. host=/run/postgresql dbname=inmailq)")
        }
        handle = Self.open(configuration)
        silenceNotices()
        try checkConnected()
        try configureSession()
    }

    deinit {
        PQfinish(handle)  // PQfinish also frees a connection that failed to open.
    }

    private static func open(_ configuration: ConnectionConfiguration) -> OpaquePointer? {
        let parameters = configuration.libpqParameters
        return withCStrings(parameters.map(\.0)) { keywords in
            withCStrings(parameters.map(\.1)) { values in
                PQconnectdbParams(keywords, values, 1)
            }
        }
    }

    private func checkConnected() throws(PostgresError) {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            let host = handle.flatMap { PQhost($0) }.map { String(cString: $0) } ?? "?"
            let port = handle.flatMap { PQport($0) }.map { String(cString: $0) } ?? "?"
            let reason = configuration.redacting(handle.map { lastErrorMessage($0) } ?? "out of memory")
            let place = host.hasPrefix("/") ? "socket directory \(host), port \(port)" : "\(host):\(port)"
            throw PostgresError(kind: .connection, message: "cannot connect to PostgreSQL at \(place): \(reason)")
        }
    }

    /// Server notices (and the FATAL a dying backend sends) would otherwise go to standard
    /// error; errors reach callers as `PostgresError`s instead.
    private func silenceNotices() {
        guard let handle else { return }
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    /// The settings values are read and written in (ISO dates in UTC, ISO 8601 intervals). Through a transaction pooler a `SET` would
    /// stay with one server session while the next transaction runs on another: there they must
    /// come from the login, and are checked instead.
    private func configureSession() throws(PostgresError) {
        guard configuration.transactionPooled else {
            try runScript("set datestyle = 'ISO'; set timezone = 'UTC'; set intervalstyle = 'iso_8601'; set client_min_messages = 'warning'")
            return
        }
        let row = try queryOne(
            "select current_setting('DateStyle') as date_style, current_setting('TimeZone') as time_zone, current_setting('IntervalStyle') as interval_style")
        let found = (try row.decode(String.self, "date_style"), try row.decode(String.self, "time_zone"), try row.decode(String.self, "interval_style"))
        guard found.0.hasPrefix("ISO"), ["UTC", "Etc/UTC"].contains(found.1), found.2 == "iso_8601" else {
            throw PostgresError(kind: .usage, message: """
                through a transaction pooler, the login's own settings must be ISO dates, UTC and ISO 8601 intervals \
                (found DateStyle=\(found.0), TimeZone=\(found.1), IntervalStyle=\(found.2)): ALTER ROLE <login> SET datestyle = 'ISO'; \
                ALTER ROLE <login> SET timezone = 'UTC'; ALTER ROLE <login> SET intervalstyle = 'iso_8601'
                """)
        }
    }

    /// True while the session is open and usable.
    public var isConnected: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// True inside `BEGIN ... COMMIT` (false on a broken connection: its transaction is gone).
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    /// The server process serving this session.
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// Reconnects if the connection broke since the last call. Prepared statements are
    /// prepared again on their next use.
    public func reconnectIfBroken() throws(PostgresError) {
        if isConnected { return }
        if transactionBodyRunning {
            throw PostgresError(kind: .connection, message: "the connection was lost inside a transaction, which is rolled back")
        }
        preparedStatements.removeAll()
        if let handle {
            PQreset(handle)
        } else {
            handle = Self.open(configuration)
        }
        try checkConnected()
        try configureSession()
        for channel in listeningChannels {
            try runScript("listen \(quoteIdentifier(channel))")
        }
    }

    // MARK: Statements

    /// Runs one statement with its values bound as parameters and returns its rows.
    /// With `prepared`, the statement is prepared on the server once per session and reused.
    @discardableResult
    public func query(_ sql: SQL, prepared: Bool = false) throws(PostgresError) -> QueryResult {
        try reconnectIfBroken()
        let (text, values) = sql.rendered
        let result: OpaquePointer?
        if prepared && !configuration.transactionPooled {
            let name = try preparedName(for: text, parameterCount: values.count)
            result = withOptionalCStrings(values) { pointers in
                PQexecPrepared(handle, name, Int32(values.count), pointers, nil, nil, 0)
            }
        } else {
            result = withOptionalCStrings(values) { pointers in
                PQexecParams(handle, text, Int32(values.count), nil, pointers, nil, nil, 0)
            }
        }
        return try checked(result, statement: text)
    }

    /// Runs a statement that returns exactly one row, and returns that row. Zero rows or several
    /// throw a `.usage` error naming the statement, instead of a crash on a missing row.
    public func queryOne(_ sql: SQL, prepared: Bool = false) throws(PostgresError) -> Row {
        let result = try query(sql, prepared: prepared)
        guard result.rowCount == 1 else {
            throw PostgresError(
                kind: .usage, message: "expected one row, got \(result.rowCount)", statement: sql.rendered.text)
        }
        return result[0]
    }

    /// Runs one statement and returns how many rows it inserted, updated or deleted.
    @discardableResult
    public func execute(_ sql: SQL, prepared: Bool = false) throws(PostgresError) -> Int {
        try query(sql, prepared: prepared).affectedRows
    }

    /// Runs a script of several statements with no parameters (migrations, session settings).
    public func runScript(_ script: String) throws(PostgresError) {
        try reconnectIfBroken()
        // PQexec returns the last statement's result; an error stops the script there.
        _ = try checked(PQexec(handle, script), statement: String(script.prefix(200)))
    }

    private func preparedName(for text: String, parameterCount: Int) throws(PostgresError) -> String {
        if let name = preparedStatements[text] { return name }
        let name = "inmailq_\(preparedStatements.count + 1)"
        _ = try checked(PQprepare(handle, name, text, Int32(parameterCount), nil), statement: text)
        preparedStatements[text] = name
        return name
    }

    /// Wraps a result, or throws the error it carries. Clears the result on every path.
    func checked(_ result: OpaquePointer?, statement: String?) throws(PostgresError) -> QueryResult {
        guard let result else {
            throw connectionError(statement: statement)
        }
        let wrapped = QueryResult(result)
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN:
            return wrapped
        default:
            throw serverError(result, statement: statement)
        }
    }

    func serverError(_ result: OpaquePointer, statement: String?) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let sqlState = field(UInt8(ascii: "C"))
        let message = field(UInt8(ascii: "M")) ?? String(cString: PQresultErrorMessage(result))
        let broken = !isConnected
        return PostgresError(
            kind: broken && sqlState == nil ? .connection : .server,
            sqlState: sqlState,
            message: message.trimmingCharacters(in: .whitespacesAndNewlines),
            detail: field(UInt8(ascii: "D")),
            hint: field(UInt8(ascii: "H")),
            constraint: field(UInt8(ascii: "n")),
            context: field(UInt8(ascii: "W")),
            statement: statement)
    }

    func connectionError(statement: String?) -> PostgresError {
        let reason = configuration.redacting(handle.map { lastErrorMessage($0) } ?? "no connection")
        return PostgresError(kind: .connection, message: "connection to PostgreSQL lost: \(reason)", statement: statement)
    }
}

/// libpq's last error text for a connection, trimmed.
func lastErrorMessage(_ handle: OpaquePointer) -> String {
    String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        .replacingOccurrences(of: "\n", with: "; ")
}

/// Calls `body` with a NULL-free array of C strings that lives for the call only.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicated = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    let pointers = duplicated.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Calls `body` with an array of C strings where nil stays a NULL pointer (SQL NULL).
func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    if strings.isEmpty { return body(nil) }
    let duplicated = strings.map { $0.map { strdup($0) } ?? nil }
    defer { duplicated.forEach { free($0) } }
    let pointers = duplicated.map { $0.map { UnsafePointer($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
