import Foundation

/// Where the records of a CSV file are, without parsing their fields: PostgreSQL's CSV parser
/// (COPY) reads the fields. This finds each record's bytes and starting line (a quoted field may
/// span lines), counts its fields, and checks that it is UTF-8, so that a bad record can be set
/// aside with its line number instead of failing the whole COPY.
public struct CSVRecords {
    public struct Record: Sendable {
        /// The record's bytes in the file, without its line ending.
        public let range: Range<Int>
        /// The file line on which the record starts, from 1.
        public let line: Int
        /// How many fields it has (delimiters outside quotes, plus one).
        public let fieldCount: Int
        /// False when a quote opened in it is never closed (only the last record can be so).
        public let quotesClosed: Bool
        public let isUTF8: Bool
    }

    /// The file's bytes, a UTF-8 byte-order mark removed.
    public let bytes: [UInt8]
    /// Every non-blank record, the header first.
    public let records: [Record]

    public init(_ data: Data, delimiter: UInt8 = UInt8(ascii: ",")) {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        self.bytes = bytes
        var records: [Record] = []
        var inQuotes = false
        var fields = 1
        var start = 0
        var line = 1
        var startLine = 1
        func finish(at end: Int, closed: Bool) {
            var last = end
            if last > start && bytes[last - 1] == UInt8(ascii: "\r") { last -= 1 }
            if last > start {
                let range = start..<last
                let valid = String(validating: bytes[range], as: UTF8.self) != nil
                records.append(Record(range: range, line: startLine, fieldCount: fields, quotesClosed: closed, isUTF8: valid))
            }
        }
        for index in bytes.indices {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                inQuotes.toggle()  // "" inside a quoted field toggles twice: no change
            case delimiter where !inQuotes:
                fields += 1
            case UInt8(ascii: "\n"):
                line += 1
                if !inQuotes {
                    finish(at: index, closed: true)
                    start = index + 1
                    startLine = line
                    fields = 1
                }
            default:
                break
            }
        }
        finish(at: bytes.count, closed: !inQuotes)
        self.records = records
    }

    /// The fields of a record, unquoted (for the header; the data rows go to COPY).
    public func fields(of record: Record, delimiter: UInt8 = UInt8(ascii: ",")) -> [String] {
        var fields: [String] = []
        var current: [UInt8] = []
        var inQuotes = false
        var index = record.range.lowerBound
        while index < record.range.upperBound {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                if inQuotes, index + 1 < record.range.upperBound, bytes[index + 1] == UInt8(ascii: "\"") {
                    current.append(byte)
                    index += 1
                } else {
                    inQuotes.toggle()
                }
            } else if byte == delimiter && !inQuotes {
                fields.append(String(decoding: current, as: UTF8.self))
                current = []
            } else {
                current.append(byte)
            }
            index += 1
        }
        fields.append(String(decoding: current, as: UTF8.self))
        return fields
    }
}
