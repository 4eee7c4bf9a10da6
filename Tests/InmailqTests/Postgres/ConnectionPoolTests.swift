import Foundation
import Postgres
import Testing

@Suite("Connection pool")
struct ConnectionPoolTests {
    @Test func sessionsAreReusedAndNeverMoreThanTheCapacityAreOpen() throws {
        let db = try TestDatabase()
        let pool = ConnectionPool(db.configuration, capacity: 2, checkoutTimeout: .milliseconds(200))
        let first = try pool.checkOut()
        let second = try pool.checkOut()
        #expect(first.backendPID != second.backendPID)
        // A third waits for a free session, then fails saying why.
        let error = #expect(throws: PostgresError.self) { _ = try pool.checkOut() }
        #expect(error?.description.contains("all 2 sessions of the connection pool stayed in use") == true)
        let pid = first.backendPID
        pool.checkIn(first)
        // The session handed back is the one handed out next.
        #expect(try pool.withConnection { $0.backendPID } == pid)
        pool.checkIn(second)
        let open = try db.connect().queryOne(
            "select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()")
        #expect(try open.decode(Int.self, "n") == 2)
    }

    @Test func aSessionHandedBackInsideATransactionIsClosedNotReused() throws {
        let db = try TestDatabase()
        let pool = ConnectionPool(db.configuration, capacity: 1)
        let connection = try pool.checkOut()
        try connection.execute("begin")
        let pid = connection.backendPID
        pool.checkIn(connection)
        #expect(try pool.withConnection { $0.backendPID } != pid)
    }
}
