import CLibPQ
import Foundation

/// The rows a statement returned. Owns its libpq result and clears it when released.
/// Not `Sendable`: read it where the query ran, or decode into Swift values first.
public final class QueryResult {
    let result: OpaquePointer
    /// Column positions by name, filled on first lookup.
    private var columnIndexes: [String: Int32]?

    init(_ result: OpaquePointer) {
        self.result = result
    }

    deinit {
        PQclear(result)
    }

    public var rowCount: Int { Int(PQntuples(result)) }
    public var columnCount: Int { Int(PQnfields(result)) }

    /// How many rows an INSERT, UPDATE, DELETE, COPY or SELECT affected.
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }

    public var columnNames: [String] {
        (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
    }

    public subscript(row: Int) -> Row { Row(result: self, index: row) }

    /// The rows in order.
    public var rows: [Row] { (0..<rowCount).map { Row(result: self, index: $0) } }

    /// The first row, or nil when there is none.
    public var first: Row? { rowCount > 0 ? self[0] : nil }

    func columnIndex(_ name: String) throws(PostgresError) -> Int32 {
        if columnIndexes == nil {
            var indexes: [String: Int32] = [:]
            for index in 0..<Int32(columnCount) {
                let column = String(cString: PQfname(result, index))
                if indexes[column] == nil { indexes[column] = index }  // the first of duplicate names
            }
            columnIndexes = indexes
        }
        if let index = columnIndexes?[name] { return index }
        throw PostgresError(kind: .usage, message: "the result has no column \"\(name)\" (it has \(columnNames.joined(separator: ", ")))")
    }
}

/// One row of a `QueryResult`; keeps the result alive while it exists.
public struct Row {
    let result: QueryResult
    public let index: Int

    /// Reads a column by name. A NULL reads as nil for an Optional type and throws otherwise.
    public func decode<T: PostgresDecodable>(_ type: T.Type, _ column: String) throws(PostgresError) -> T {
        try decode(type, at: Int(result.columnIndex(column)))
    }

    /// Reads a column by position, counting from 0.
    public func decode<T: PostgresDecodable>(_ type: T.Type, at column: Int) throws(PostgresError) -> T {
        let handle = result.result
        let row = Int32(index)
        let field = Int32(column)
        guard column >= 0, column < result.columnCount else {
            throw PostgresError(kind: .usage, message: "column \(column) is out of range (the result has \(result.columnCount))")
        }
        var name: String { String(cString: PQfname(handle, field)) }  // for error messages only
        if PQgetisnull(handle, row, field) == 1 {
            if let nullable = T.self as? any NullableValue.Type { return nullable.null as! T }
            throw PostgresError(kind: .decoding, message: "column \"\(name)\" is NULL; read it as \(T.self)? to allow NULL")
        }
        let text = String(cString: PQgetvalue(handle, row, field))
        do {
            return try T(postgresText: text)
        } catch {
            let typeName = PostgresTypeNames.name(of: PQftype(handle, field))
            throw PostgresError(
                kind: .decoding,
                message: "column \"\(name)\" of type \(typeName) cannot be read as \(T.self): \(error.reason)")
        }
    }

    /// True when the column holds SQL NULL.
    public func isNull(_ column: String) throws(PostgresError) -> Bool {
        PQgetisnull(result.result, Int32(index), try result.columnIndex(column)) == 1
    }
}

/// A type whose NULL is a value (Optional), so a NULL column decodes to it.
protocol NullableValue {
    static var null: Self { get }
}

extension Optional: NullableValue {
    static var null: Self { nil }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText text: String) throws(DecodingFailure) {
        self = try Wrapped(postgresText: text)
    }
}

/// Names of common built-in types, for error messages.
enum PostgresTypeNames {
    static func name(of oid: Oid) -> String {
        let known: [Oid: String] = [
            16: "boolean", 17: "bytea", 18: "char", 19: "name", 20: "bigint", 21: "smallint", 23: "integer",
            25: "text", 26: "oid", 114: "json", 700: "real", 701: "double precision", 1043: "varchar",
            1082: "date", 1114: "timestamp", 1184: "timestamptz", 1186: "interval", 1700: "numeric",
            2950: "uuid", 3802: "jsonb", 1000: "boolean[]", 1007: "integer[]", 1016: "bigint[]",
            1009: "text[]", 2951: "uuid[]",
        ]
        return known[oid] ?? "oid \(oid)"
    }
}
