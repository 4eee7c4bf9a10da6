import ArgumentParser

/// Fails validation unless `value` lies in `range` (NaN and infinities never do), naming the
/// option and the value given.
func requireInRange<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ name: String) throws {
    guard range.contains(value) else {
        throw ValidationError("\(name) must be between \(range.lowerBound) and \(range.upperBound) (got \(value))")
    }
}

/// The host and port of a `--listen host:port` option, or a validation error naming it.
func listenAddress(_ text: String, option: String = "--listen") throws -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port),
          colon > text.startIndex
    else {
        throw ValidationError("\(option) must be host:port with a port of 0-65535 (got \(text))")
    }
    return (String(text[..<colon]), port)
}

/// Where a worker delivers messages (`--courier`).
enum CourierChoice: String, CaseIterable, ExpressibleByArgument {
    /// The simulated LinkedIn in the database.
    case sandbox
    /// The LinkedIn messaging gateway over HTTP.
    case gateway
}
