/// A message text with personalisation fields: `{{first_name}}`, `{{company}}`, any custom field
/// of the contact, and fallbacks (`{{first_name|there}}`) used when the contact has no value.
public struct MessageTemplate: Sendable, Equatable {
    enum Piece: Sendable, Equatable {
        case text(String)
        case field(name: String, fallback: String?)
    }

    public let source: String
    let pieces: [Piece]

    /// Parses `source`; throws `TemplateError.malformed` for an unclosed `{{` or an empty field name.
    /// (Every send parses its step's template: this stays in the standard library, no Foundation
    /// search or regular expression.)
    public init(_ source: String) throws {
        self.source = source
        var pieces: [Piece] = []
        var rest = Substring(source)
        while let open = rest.firstRange(ofPair: UInt8(ascii: "{")) {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].firstRange(ofPair: UInt8(ascii: "}")) else {
                throw TemplateError.malformed(reason: "\"{{\" at \"\(rest[open.lowerBound...].prefix(30))\" is never closed with \"}}\"")
            }
            let inside = rest[open.upperBound..<close.lowerBound]
            let parts = inside.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0].trimmed(where: Self.isSpace).lowercased()
            guard Self.isFieldName(name) else {
                throw TemplateError.malformed(reason: "\"{{\(inside)}}\" does not name a field (letters, digits and _)")
            }
            let fallback = parts.count > 1 ? String(parts[1].trimmed(where: Self.isSpace)) : nil
            pieces.append(.field(name: name, fallback: fallback))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        self.pieces = pieces
    }

    /// A letter a-z, then letters a-z, digits and _.
    static func isFieldName(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        guard let first = bytes.next(), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
        while let byte = bytes.next() {
            guard (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_")
            else { return false }
        }
        return true
    }

    /// Spaces and tabs (Foundation's `CharacterSet.whitespaces`).
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || scalar == " " || (scalar.value > 0x7F && scalar.properties.generalCategory == .spaceSeparator)
    }

    /// Spaces, tabs and line breaks (Foundation's `CharacterSet.whitespacesAndNewlines`).
    static func isSpaceOrNewline(_ scalar: Unicode.Scalar) -> Bool {
        if isSpace(scalar) || (0x0A...0x0D).contains(scalar.value) || scalar.value == 0x85 { return true }
        guard scalar.value > 0x7F else { return false }
        let category = scalar.properties.generalCategory
        return category == .lineSeparator || category == .paragraphSeparator
    }

    /// The field names the template uses, in order of first use.
    public var fieldNames: [String] {
        var seen: [String] = []
        for case .field(let name, _) in pieces where !seen.contains(name) { seen.append(name) }
        return seen
    }

    /// The shortest text any contact can produce: fixed text plus fallbacks (an empty value for
    /// a field without one). If even this exceeds a limit, no contact can be sent to.
    public var shortestLength: Int {
        pieces.reduce(0) { total, piece in
            switch piece {
            case .text(let text): total + text.count
            case .field(_, let fallback): total + (fallback?.count ?? 0)
            }
        }
    }

    /// Checks the template before a campaign starts: every field is known and the text can fit
    /// `limit` characters. `part` names the step and part ("step 2 body") in the error.
    public func validate(knownFields: Set<String>, limit: Int, part: String) throws(TemplateError) {
        for name in fieldNames where !knownFields.contains(name) {
            throw .unknownField(part: part, field: name, known: knownFields.sorted())
        }
        if shortestLength > limit {
            throw .tooLong(part: part, length: shortestLength, limit: limit)
        }
    }

    /// The text for one contact. An empty or missing value takes the fallback; a field with
    /// neither throws `missingValue`. A result over `limit` characters throws `tooLong` (S5).
    public func render(_ values: [String: String], limit: Int, part: String) throws(TemplateError) -> String {
        var text = ""
        for piece in pieces {
            switch piece {
            case .text(let fixed):
                text += fixed
            case .field(let name, let fallback):
                let value = values[name].map { Substring($0).trimmed(where: Self.isSpaceOrNewline) } ?? ""
                if !value.isEmpty {
                    text += value
                } else if let fallback {
                    text += fallback
                } else {
                    throw .missingValue(part: part, field: name)
                }
            }
        }
        if text.count > limit { throw .tooLong(part: part, length: text.count, limit: limit) }
        return text
    }
}

/// Why a template cannot be used, naming the step part and the field.
public enum TemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(reason: String)
    case unknownField(part: String, field: String, known: [String])
    case missingValue(part: String, field: String)
    case tooLong(part: String, length: Int, limit: Int)

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed template: \(reason)"
        case .unknownField(let part, let field, let known):
            "\(part): unknown field {{\(field)}} (known: \(known.joined(separator: ", ")))"
        case .missingValue(let part, let field):
            "\(part): the contact has no \(field) and the template gives no fallback ({{\(field)|...}})"
        case .tooLong(let part, let length, let limit):
            "\(part): \(length) characters, more than the limit of \(limit) (S5)"
        }
    }
}

extension Substring {
    /// The first two `byte`s in a row ("{{"), an ASCII byte, so the range is on character boundaries.
    func firstRange(ofPair byte: UInt8) -> Range<Index>? {
        var previous: Index?
        var index = utf8.startIndex
        while index < utf8.endIndex {
            if utf8[index] == byte {
                if let previous { return previous..<utf8.index(after: index) }
                previous = index
            } else {
                previous = nil
            }
            index = utf8.index(after: index)
        }
        return nil
    }

    /// Without the leading and trailing Unicode scalars `isTrimmed` picks.
    func trimmed(where isTrimmed: (Unicode.Scalar) -> Bool) -> Substring {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }) else { return self[endIndex...] }
        let last = scalars.lastIndex(where: { !isTrimmed($0) })!
        return Substring(scalars[first...last])
    }
}
