/// Results too large to hold: a server-side cursor hands them over a batch at a time.
extension Connection {
    /// Runs `query` through a cursor and calls `body` with each batch of at most `batchSize`
    /// rows (the first of at most 100), in order, so memory stays flat whatever the result's
    /// size and the first rows come as soon as the server has them. A cursor lives in a
    /// transaction: the caller's when one is open, else a read-only one of its own; JIT
    /// compilation is off for the rest of that transaction. Returns how many rows there were.
    @discardableResult
    public func forEachBatch(of query: SQL, batchSize: Int = 1_000, _ body: (QueryResult) throws -> Void) throws -> Int {
        precondition(batchSize > 0, "a batch holds at least one row")
        func stream(_ connection: Connection) throws -> Int {
            cursorCount += 1
            let cursor = "inmailq_cursor_\(cursorCount)"
            // A cursor is planned for its first rows (cursor_tuple_fraction), but its cost still
            // counts the whole result, and JIT compiling for that cost held the first row back by
            // a second on a campaign of 100,000 contacts.
            try connection.execute("set local jit = off")
            try connection.execute("declare \(identifier: cursor) no scroll cursor for \(query)")
            defer { _ = try? connection.execute("close \(identifier: cursor)") }
            var rows = 0
            var size = min(batchSize, 100)  // a short first batch: the first rows go out at once
            while true {
                let batch = try connection.query("fetch forward \(SQL(unsafeText: String(size))) from \(identifier: cursor)")
                guard batch.rowCount > 0 else { return rows }
                rows += batch.rowCount
                try body(batch)
                if batch.rowCount < size { return rows }
                size = batchSize
            }
        }
        if isInTransaction { return try stream(self) }
        return try transaction { connection in
            try connection.execute("set transaction read only")
            return try stream(connection)
        }
    }
}
