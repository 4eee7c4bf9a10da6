import CLibPQ
import Foundation

/// Where and how to connect: a `postgresql://` URL or a `key=value` conninfo string, plus the
/// options the client always sets (connect timeout, TCP keepalives, application name).
public struct ConnectionConfiguration: Sendable, Equatable {
    /// A URL or conninfo; empty means libpq's standard `PG*` environment variables.
    public var conninfo: String
    public var applicationName: String
    /// Seconds to wait for the server before giving up (unless the conninfo sets its own).
    public var connectTimeout: Int
    /// Server settings every session starts with (`lock_timeout`, ...), sent when it connects.
    /// Names and values are letters, digits, `_` and `.` only.
    public var sessionSettings: [String: String] = [:]
    /// True when the conninfo leads to a transaction pooler (PgBouncer's `pool_mode =
    /// transaction`), where consecutive transactions may run on different server sessions: no
    /// named prepared statements, no `SET` and no startup `options` (`sessionSettings` is not
    /// sent); the session's settings must come from the login (`ALTER ROLE ... SET`), and a
    /// new connection checks that they do.
    public var transactionPooled = false

    public init(_ conninfo: String, applicationName: String = "inmailq", connectTimeout: Int = 10) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.connectTimeout = connectTimeout
    }

    /// The configuration the environment gives: `DATABASE_URL` if set, else the `PG*`
    /// variables (`PGHOST`, `PGDATABASE`, `PGSERVICE`, ...) if any is set, else nil.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        applicationName: String = "inmailq"
    ) -> ConnectionConfiguration? {
        if let url = environment["DATABASE_URL"], !url.isEmpty {
            return ConnectionConfiguration(url, applicationName: applicationName)
        }
        let standard = ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"]
        if standard.contains(where: { !(environment[$0] ?? "").isEmpty }) {
            return ConnectionConfiguration("", applicationName: applicationName)
        }
        return nil
    }

    /// True for the empty string (the `PG*` variables), a `postgres://` or `postgresql://` URL,
    /// and a conninfo of `key=value` pairs: the shapes libpq reads as connection settings.
    public var hasReadableConninfo: Bool {
        let lowered = conninfo.lowercased()
        return conninfo.isEmpty || lowered.hasPrefix("postgresql://") || lowered.hasPrefix("postgres://") || conninfo.contains("=")
    }

    /// The keyword/value pairs handed to libpq. The client's defaults come first so that
    /// anything the URL or conninfo says (expanded from `dbname`, last) overrides them.
    var libpqParameters: [(String, String)] {
        var parameters: [(String, String)] = [
            ("connect_timeout", String(connectTimeout)),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("keepalives_interval", "10"),
            ("keepalives_count", "3"),
            ("application_name", applicationName),
            ("client_encoding", "UTF8"),
        ]
        if !sessionSettings.isEmpty && !transactionPooled {
            let options = sessionSettings.sorted { $0.key < $1.key }.map { "-c \($0.key)=\($0.value)" }
            parameters.append(("options", options.joined(separator: " ")))
        }
        if !conninfo.isEmpty { parameters.append(("dbname", conninfo)) }
        return parameters
    }
}

extension ConnectionConfiguration {
    /// `message` (an error from libpq, which quotes the connection string it could not read)
    /// with this configuration's password replaced by `****`, however the password was written:
    /// in a URL's user part or query, as a `password=` keyword, percent-encoded or not.
    public func redacting(_ message: String) -> String {
        var secrets: [String] = []
        if let userInfo = conninfo.firstMatch(of: /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^@\/?#]*)@/)?.1,
           let colon = userInfo.firstIndex(of: ":") {
            secrets.append(String(userInfo[userInfo.index(after: colon)...]))
        }
        for match in conninfo.matches(of: /(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)/) {
            secrets.append(String(match.1).trimmingCharacters(in: CharacterSet(charactersIn: "'")))
        }
        var text = message
        for secret in secrets where !secret.isEmpty {
            for form in Set([secret, secret.removingPercentEncoding ?? secret]) where !form.isEmpty {
                text = text.replacingOccurrences(of: form, with: "****")
            }
        }
        return text
    }

    /// The same server and credentials, another database. The result is a `key=value`
    /// conninfo (values quoted as libpq reads them), whatever form the original had.
    public func withDatabase(_ database: String) throws(PostgresError) -> ConnectionConfiguration {
        var pairs: [(String, String)]
        do {
            pairs = try Self.parse(conninfo)
        } catch {
            throw PostgresError(kind: .usage, message: redacting(error.message))
        }
        pairs.removeAll { $0.0 == "dbname" }
        pairs.append(("dbname", database))
        let text = pairs.map { "\($0.0)='\($0.1.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'"))'" }
            .joined(separator: " ")
        var configuration = ConnectionConfiguration(text, applicationName: applicationName, connectTimeout: connectTimeout)
        configuration.sessionSettings = sessionSettings
        configuration.transactionPooled = transactionPooled
        return configuration
    }

    /// The keyword/value pairs a URL or conninfo sets, as libpq parses them.
    public static func parse(_ conninfo: String) throws(PostgresError) -> [(String, String)] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            let reason = errorMessage.map { String(cString: $0) } ?? "out of memory"
            PQfreemem(errorMessage)
            throw PostgresError(kind: .usage, message: "invalid connection string: \(reason.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        defer { PQconninfoFree(options) }
        var pairs: [(String, String)] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                pairs.append((String(cString: keyword), String(cString: value)))
            }
            option += 1
        }
        return pairs
    }
}
