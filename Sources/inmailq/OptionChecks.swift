import ArgumentParser

/// Fails validation unless `value` lies in `range` (NaN and infinities never do), naming the
/// option and the value given.
func requireInRange<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ name: String) throws {
    guard range.contains(value) else {
        throw ValidationError("\(name) must be between \(range.lowerBound) and \(range.upperBound) (got \(value))")
    }
}

/// Where a worker delivers messages (`--courier`).
enum CourierChoice: String, CaseIterable, ExpressibleByArgument {
    /// The simulated LinkedIn in the database.
    case sandbox
    /// The LinkedIn messaging gateway over HTTP.
    case gateway
}
