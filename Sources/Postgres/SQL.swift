import Foundation

/// A SQL statement whose values travel as bound parameters, never as text.
///
/// Written with string interpolation: `"select * from t where id = \(id)"` becomes
/// `select * from t where id = $1` with `id` bound as `$1`. Splicing a value into the
/// SQL text is not expressible; fragments compose with `\(fragment)` and keep their
/// values bound (their placeholders are renumbered).
public struct SQL: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    enum Segment: Sendable {
        case text(String)
        case value(String?)
    }

    var segments: [Segment]

    public init(stringLiteral value: String) {
        segments = [.text(value)]
    }

    public init(stringInterpolation: StringInterpolation) {
        segments = stringInterpolation.segments
    }

    /// Builds a statement from text that was not written as a literal (for example a
    /// migration file). The text is sent as is; it must hold no values from untrusted input.
    public init(unsafeText text: String) {
        segments = [.text(text)]
    }

    /// The SQL text with `$n` placeholders, and the parameter values in order.
    public var rendered: (text: String, values: [String?]) {
        var text = ""
        var values: [String?] = []
        for segment in segments {
            switch segment {
            case .text(let part):
                text += part
            case .value(let value):
                values.append(value)
                text += "$\(values.count)"
            }
        }
        return (text, values)
    }

    public var description: String { rendered.text }

    /// Appends another statement, keeping its values bound.
    public static func + (lhs: SQL, rhs: SQL) -> SQL {
        var result = lhs
        result.segments += rhs.segments
        return result
    }

    /// Joins fragments with a separator such as `", "` or `" and "`.
    public static func joined(_ parts: [SQL], separator: String) -> SQL {
        var result = SQL(stringLiteral: "")
        for (index, part) in parts.enumerated() {
            if index > 0 { result.segments.append(.text(separator)) }
            result.segments += part.segments
        }
        return result
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var segments: [Segment] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            segments.reserveCapacity(interpolationCount * 2 + 1)
        }

        public mutating func appendLiteral(_ literal: String) {
            if !literal.isEmpty { segments.append(.text(literal)) }
        }

        /// Binds a value as the next parameter.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            segments.append(.value(value.postgresText))
        }

        /// Binds an optional value; `nil` is bound as SQL NULL.
        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            segments.append(.value(value?.postgresText))
        }

        /// Binds an array whose elements may be NULL, as a one-dimensional array literal.
        public mutating func appendInterpolation<Element: PostgresEncodable>(_ values: [Element?]) {
            segments.append(.value(ArrayLiteral.encode(values.map { $0?.postgresText })))
        }

        /// Inserts a fragment, keeping its values bound.
        public mutating func appendInterpolation(_ fragment: SQL) {
            segments += fragment.segments
        }

        /// Inserts an identifier (table, column, channel), quoted as PostgreSQL quotes them.
        public mutating func appendInterpolation(identifier: String) {
            segments.append(.text(quoteIdentifier(identifier)))
        }
    }
}

/// Quotes an identifier: `my "table"` becomes `"my ""table"""`.
public func quoteIdentifier(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
