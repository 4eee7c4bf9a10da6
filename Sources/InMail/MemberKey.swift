import Foundation

/// One LinkedIn member, whatever link pointed at them: `in:<profile slug>` for profile URLs,
/// `sales:<lead id>` for Sales Navigator lead URLs. Slugs are percent-decoded and lower-cased.
public struct MemberKey: Hashable, Sendable, CustomStringConvertible {
    public let value: String
    public var description: String { value }

    /// Reads what people paste: with or without scheme or `www`, country subdomains
    /// (`uk.linkedin.com`), mobile links, trailing slashes, query strings and fragments,
    /// percent-encoded and non-ASCII slugs, Sales Navigator lead URLs.
    public init(profileURL raw: String) throws(MemberKeyError) {
        if let key = Self.plainProfileKey(raw) {
            value = key
        } else {
            value = try Self.parse(raw)
        }
    }

    /// The key of a link in the shape nearly every export writes,
    /// `[http[s]://][sub.]linkedin.com/in/<slug>[/][?query][#fragment]`, printable ASCII with a slug
    /// of letters, digits, `-` and `_`, read byte by byte; nil for anything else, which `parse`
    /// reads. An import of 100,000 rows spends most of its Swift time here.
    static func plainProfileKey(_ link: String) -> String? {
        var link = link
        return link.withUTF8 { bytes -> String? in
            let count = bytes.count
            guard count > 0, count <= maximumLinkBytes else { return nil }
            func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
            func isAlphanumeric(_ byte: UInt8) -> Bool {
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            }
            func startsWith(_ text: StaticString, at start: Int, ignoringCase: Bool) -> Bool {
                let length = text.utf8CodeUnitCount
                guard start + length <= count else { return false }
                for offset in 0..<length {
                    let byte = bytes[start + offset]
                    if (ignoringCase ? lowered(byte) : byte) != text.utf8Start[offset] { return false }
                }
                return true
            }
            var index = 0
            if startsWith("https://", at: 0, ignoringCase: true) {
                index = 8
            } else if startsWith("http://", at: 0, ignoringCase: true) {
                index = 7
            }
            // The host: labels of letters, digits and `-`, no port, no user.
            let hostStart = index
            var previous: UInt8 = UInt8(ascii: ".")
            while index < count, isAlphanumeric(bytes[index]) || bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: ".") {
                if bytes[index] == UInt8(ascii: "."), previous == UInt8(ascii: ".") { return nil }
                previous = bytes[index]
                index += 1
            }
            guard index < count, bytes[index] == UInt8(ascii: "/"), previous != UInt8(ascii: ".") else { return nil }
            let host = String(decoding: bytes[hostStart..<index].lazy.map(lowered), as: UTF8.self)
            guard host == "linkedin.com" || host.hasSuffix(".linkedin.com") else { return nil }
            guard startsWith("/in/", at: index, ignoringCase: false) else { return nil }
            index += 4
            let slugStart = index
            while index < count, isAlphanumeric(bytes[index]) || bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "_") {
                index += 1
            }
            let slug = bytes[slugStart..<index]
            guard !slug.isEmpty, slug.count <= maximumSlugCharacters else { return nil }
            if index < count, bytes[index] == UInt8(ascii: "/") { index += 1 }
            // What may follow: a query and a fragment of URL characters, percent escapes well formed.
            if index < count {
                guard bytes[index] == UInt8(ascii: "?") || bytes[index] == UInt8(ascii: "#") else { return nil }
                var inFragment = false
                while index < count {
                    let byte = bytes[index]
                    if byte == UInt8(ascii: "#") {
                        guard !inFragment else { return nil }
                        inFragment = true
                    } else if byte == UInt8(ascii: "%") {
                        guard index + 2 < count, bytes[index + 1].isHexDigit, bytes[index + 2].isHexDigit else { return nil }
                        index += 2
                    } else if !(isAlphanumeric(byte) || Self.queryPunctuation.contains(byte)) {
                        return nil
                    }
                    index += 1
                }
            }
            return "in:" + String(decoding: slug.lazy.map(lowered), as: UTF8.self)
        }
    }

    /// RFC 3986's characters of a query or fragment besides letters, digits and `%`.
    private static let queryPunctuation = Set("-._~!$&'()*+,;=:@/?".utf8)

    /// Reads any link `init(profileURL:)` accepts, through Foundation's URL parser.
    private static func parse(_ raw: String) throws(MemberKeyError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalid(raw, reason: "empty") }
        guard trimmed.utf8.count <= Self.maximumLinkBytes else {
            throw .invalid(raw, reason: "\(trimmed.utf8.count) bytes long; a profile link has at most \(Self.maximumLinkBytes)")
        }
        var text = trimmed
        if text.range(of: "^[A-Za-z][A-Za-z0-9+.-]*://", options: .regularExpression) == nil { text = "https://" + text }
        guard let components = URLComponents(string: Self.escapingSpaces(text)), let host = components.host?.lowercased() else {
            throw .invalid(raw, reason: "not a URL")
        }
        guard ["http", "https"].contains(components.scheme?.lowercased() ?? "") else {
            throw .invalid(raw, reason: "not a web link")
        }
        guard host == "linkedin.com" || host.hasSuffix(".linkedin.com") else {
            throw .invalid(raw, reason: "not a linkedin.com link (host \(host))")
        }
        let segments = components.percentEncodedPath.split(separator: "/").map(String.init)
        // /in/<slug>, /mwlite/in/<slug> (mobile), /sales/lead/<id>,<kind>,<token>, /sales/people/<id>,...
        if let index = segments.firstIndex(of: "in"), index + 1 < segments.count {
            let slug = segments[index + 1].removingPercentEncoding ?? segments[index + 1]
            guard !slug.isEmpty, !slug.contains(where: { $0 == " " || $0 == "/" }) else {
                throw .invalid(raw, reason: "the profile name after /in/ is empty or malformed")
            }
            guard slug.count <= Self.maximumSlugCharacters else {
                throw .invalid(raw, reason: "the profile name after /in/ has \(slug.count) characters; LinkedIn's have at most \(Self.maximumSlugCharacters)")
            }
            return "in:" + slug.lowercased()
        }
        if segments.count >= 3, segments[0] == "sales", ["lead", "people"].contains(segments[1]) {
            let lead = String(segments[2].split(separator: ",").first ?? "")
            guard lead.range(of: "^[A-Za-z0-9_-]{6,}$", options: .regularExpression) != nil else {
                throw .invalid(raw, reason: "the Sales Navigator lead id is missing or malformed")
            }
            return "sales:" + lead
        }
        throw .invalid(raw, reason: "not a profile link (expected /in/<name> or /sales/lead/<id>)")
    }

    /// LinkedIn's public profile names have 3 to 100 characters.
    static let maximumSlugCharacters = 100
    /// A profile link, query string included, is far shorter than this.
    static let maximumLinkBytes = 2_048

    private static func escapingSpaces(_ text: String) -> String {
        text.replacingOccurrences(of: " ", with: "%20")
    }
}

/// Why a pasted link is not a member's profile.
public enum MemberKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let input, let reason): "\"\(input.prefix(120))\": \(reason)"
        }
    }
}

private extension UInt8 {
    var isHexDigit: Bool {
        (self >= 0x30 && self <= 0x39) || (self >= 0x41 && self <= 0x46) || (self >= 0x61 && self <= 0x66)
    }
}
