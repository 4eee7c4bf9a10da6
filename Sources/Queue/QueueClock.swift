import Foundation
import Postgres

/// The business clock every worker reads (`clock_now()` in SQL): real time plus an offset
/// that only grows. Tests and demos move it forward so that days pass in seconds.
public enum QueueClock {
    /// Business "now" as the database sees it.
    public static func now(on connection: Connection) throws -> Date {
        try connection.queryOne("select clock_now() as now").decode(Date.self, "now")
    }

    /// Moves business time forward by `interval` and wakes workers; returns the new "now".
    @discardableResult
    public static func advance(by interval: Duration, on connection: Connection) throws -> Date {
        try connection.queryOne("select clock_advance(\(interval.seconds) * interval '1 second') as now").decode(Date.self, "now")
    }
}
