import CLibPQ
import Foundation

/// Sends data for a running `COPY ... FROM STDIN`, in chunks of at least 64 KiB.
public final class CopyWriter {
    private let connection: Connection
    private var buffer: [UInt8] = []
    private static let chunkSize = 64 * 1024

    init(connection: Connection) {
        self.connection = connection
        buffer.reserveCapacity(Self.chunkSize * 2)
    }

    /// Writes raw bytes in the statement's format (text, csv or binary).
    public func write(_ bytes: some Sequence<UInt8>) throws(PostgresError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.chunkSize { try flush() }
    }

    /// Writes one row in COPY's text format: tab-separated, NULL as `\N`, special bytes escaped.
    public func writeRow(_ values: [String?]) throws(PostgresError) {
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.append(0x09) }
            guard let value else {
                buffer.append(contentsOf: [0x5C, 0x4E])  // \N
                continue
            }
            for byte in value.utf8 {
                switch byte {
                case 0x5C: buffer.append(contentsOf: [0x5C, 0x5C])
                case 0x09: buffer.append(contentsOf: [0x5C, 0x74])
                case 0x0A: buffer.append(contentsOf: [0x5C, 0x6E])
                case 0x0D: buffer.append(contentsOf: [0x5C, 0x72])
                default: buffer.append(byte)
                }
            }
        }
        buffer.append(0x0A)
        if buffer.count >= Self.chunkSize { try flush() }
    }

    func flush() throws(PostgresError) {
        guard !buffer.isEmpty else { return }
        // PQputCopyData takes a byte count, not a character count.
        let sent = buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(connection.handle, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1 else { throw connection.connectionError(statement: "COPY") }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension Connection {
    /// Runs a `COPY ... FROM STDIN` statement, feeding it what `write` writes, and returns the
    /// number of rows loaded. A rejected row fails the whole COPY with the server's error,
    /// whose `context` names the line; nothing of that COPY is kept.
    @discardableResult
    public func copyIn(_ statement: SQL, write: (CopyWriter) throws -> Void) throws -> Int {
        guard !isInTransaction || PQtransactionStatus(handle) == PQTRANS_INTRANS else {
            throw PostgresError(kind: .usage, message: "COPY needs a connection that is not inside a failed transaction")
        }
        let start = try query(statement)
        guard PQresultStatus(start.result) == PGRES_COPY_IN else {
            throw PostgresError(kind: .usage, message: "not a COPY FROM STDIN statement", statement: statement.description)
        }
        let writer = CopyWriter(connection: self)
        do {
            try write(writer)
            try writer.flush()
        } catch {
            _ = PQputCopyEnd(handle, "aborted by the client: \(error)")
            _ = try? finishCopy(statement: statement.description)
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw connectionError(statement: statement.description) }
        return try finishCopy(statement: statement.description)
    }

    /// Loads rows with `COPY ... FROM STDIN` in text format; each row is one array of values.
    @discardableResult
    public func copyIn(_ statement: SQL, rows: some Sequence<[String?]>) throws -> Int {
        try copyIn(statement) { writer in
            for row in rows { try writer.writeRow(row) }
        }
    }

    /// Reads the results that end a COPY; the last one says whether it succeeded.
    private func finishCopy(statement: String) throws(PostgresError) -> Int {
        var loaded = 0
        var failure: PostgresError?
        while let next = PQgetResult(handle) {
            let result = QueryResult(next)
            switch PQresultStatus(next) {
            case PGRES_COMMAND_OK: loaded = result.affectedRows
            default: failure = failure ?? serverError(next, statement: statement)
            }
        }
        if let failure { throw failure }
        return loaded
    }
}
