import Foundation

/// A Swift value that can be bound as a statement parameter (sent in PostgreSQL's text format).
public protocol PostgresEncodable: Sendable {
    /// The value in PostgreSQL's text input format.
    var postgresText: String { get }
}

/// A Swift value that can be read from a result column (received in PostgreSQL's text format).
public protocol PostgresDecodable {
    /// Parses PostgreSQL's text output; throws `DecodingFailure` when the text is not of this type.
    init(postgresText text: String) throws(DecodingFailure)
}

/// Why a text value could not be read as the requested Swift type.
public struct DecodingFailure: Error, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self }
    public init(postgresText text: String) { self = text }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = Int(text) else { throw DecodingFailure("not an integer: \(text.prefix(40))") }
        self = value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = Int64(text) else { throw DecodingFailure("not an integer: \(text.prefix(40))") }
        self = value
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = Int32(text) else { throw DecodingFailure("not a 32-bit integer: \(text.prefix(40))") }
        self = value
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresText: String {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return String(self)
    }
    public init(postgresText text: String) throws(DecodingFailure) {
        switch text {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(text) else { throw DecodingFailure("not a number: \(text.prefix(40))") }
            self = value
        }
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self ? "t" : "f" }
    public init(postgresText text: String) throws(DecodingFailure) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw DecodingFailure("not a boolean: \(text.prefix(40))")
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { uuidString.lowercased() }
    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = UUID(uuidString: text) else { throw DecodingFailure("not a UUID: \(text.prefix(40))") }
        self = value
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// Sent as an ISO 8601 instant in UTC with microseconds, as `timestamptz` reads it.
    public var postgresText: String { TimestampFormat.format(self) }

    /// Reads `timestamptz` output in the ISO date style (the client sets `DateStyle=ISO`).
    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = TimestampFormat.parse(text) else {
            throw DecodingFailure("not a timestamp with time zone: \(text.prefix(40))")
        }
        self = value
    }
}

/// JSON held as its text; bind it to a `json`/`jsonb` parameter or read such a column.
public struct JSONText: PostgresEncodable, PostgresDecodable, Equatable, Hashable {
    public let text: String
    public init(_ text: String) { self.text = text }
    public init(postgresText text: String) { self.text = text }
    public var postgresText: String { text }

    /// Encodes a value with `JSONEncoder` (keys sorted, so equal values give equal text).
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Decodes the JSON into a `Decodable` type.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// A one-dimensional array literal such as `{1,2,NULL}`; every element is quoted.
    public var postgresText: String { ArrayLiteral.encode(map { Optional($0.postgresText) }) }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    public init(postgresText text: String) throws(DecodingFailure) {
        var result: [Element] = []
        for item in try ArrayLiteral.decode(text) {
            guard let item else { throw DecodingFailure("array holds a NULL element") }
            result.append(try Element(postgresText: item))
        }
        self = result
    }
}

/// PostgreSQL's one-dimensional array text format.
enum ArrayLiteral {
    /// Byte by byte: `"` and `\` are ASCII, so escaping them in UTF-8 never splits a character.
    static func encode(_ items: [String?]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(items.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        out.append(UInt8(ascii: "{"))
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let item else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(UInt8(ascii: "\""))
            for byte in item.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) throws(DecodingFailure) -> [String?] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.first == "{", scalars.last == "}" else {
            throw DecodingFailure("not an array literal: \(text.prefix(40))")
        }
        var items: [String?] = []
        var index = 1
        let end = scalars.count - 1
        if index == end { return [] }
        while index <= end {
            var item = String.UnicodeScalarView()
            var quoted = false
            if scalars[index] == "\"" {
                quoted = true
                index += 1
                while index < end, scalars[index] != "\"" {
                    if scalars[index] == "\\" { index += 1 }
                    item.append(scalars[index])
                    index += 1
                }
                index += 1  // closing quote
            } else {
                while index < end, scalars[index] != "," {
                    if scalars[index] == "{" { throw DecodingFailure("multi-dimensional arrays are not supported") }
                    item.append(scalars[index])
                    index += 1
                }
            }
            let value = String(item)
            items.append(!quoted && value == "NULL" ? nil : value)
            index += 1  // the comma or the closing brace
        }
        return items
    }
}

/// Reads and writes `timestamptz` text in the ISO style, always in UTC on the way out.
enum TimestampFormat {
    static func format(_ date: Date) -> String {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        var seconds = Int64((micros / 1_000_000).rounded(.down))
        var fraction = Int64(micros) - seconds * 1_000_000
        if fraction < 0 {
            fraction += 1_000_000
            seconds -= 1
        }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let fractionText = String(fraction)
        let padded = String(repeating: "0", count: 6 - fractionText.count) + fractionText
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%@+00",
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), padded)
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM[:SS]]`.
    static func parse(_ text: String) -> Date? {
        let s = Array(text.utf8)
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= s.count else { return nil }
            var value = 0
            for _ in 0..<digits {
                let c = s[i]
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
                i += 1
            }
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < s.count, s[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            expect(32), let hour = number(2), expect(58), let minute = number(2), expect(58),
            let second = number(2)
        else { return nil }
        var micros = 0
        if i < s.count, s[i] == 46 {
            i += 1
            var digits = 0
            while i < s.count, s[i] >= 48, s[i] <= 57 {
                if digits < 6 { micros = micros * 10 + Int(s[i] - 48) }
                digits += 1
                i += 1
            }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        guard i < s.count, s[i] == 43 || s[i] == 45 else { return nil }
        let sign = s[i] == 43 ? 1 : -1
        i += 1
        guard let offsetHours = number(2) else { return nil }
        var offset = offsetHours * 3600
        if expect(58), let offsetMinutes = number(2) { offset += offsetMinutes * 60 }
        if expect(58), let offsetSeconds = number(2) { offset += offsetSeconds }
        guard i == s.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = Int(timegm(&parts)) - sign * offset
        return Date(timeIntervalSince1970: Double(epoch) + Double(micros) / 1_000_000)
    }
}

/// A Swift enum that mirrors a PostgreSQL enum type: decoded from, and bound as, its label.
/// Declare the cases with the SQL labels as raw values; a test should compare `allCases` with
/// the type's `enum_range` so the two cannot drift apart.
public protocol PostgresEnum: RawRepresentable, CaseIterable, PostgresEncodable, PostgresDecodable
where RawValue == String {}

extension PostgresEnum {
    public var postgresText: String { rawValue }

    public init(postgresText text: String) throws(DecodingFailure) {
        guard let value = Self(rawValue: text) else { throw DecodingFailure("\"\(text)\" is not a \(Self.self)") }
        self = value
    }
}
