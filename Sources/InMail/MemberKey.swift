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
            value = "in:" + slug.lowercased()
            return
        }
        if segments.count >= 3, segments[0] == "sales", ["lead", "people"].contains(segments[1]) {
            let lead = String(segments[2].split(separator: ",").first ?? "")
            guard lead.range(of: "^[A-Za-z0-9_-]{6,}$", options: .regularExpression) != nil else {
                throw .invalid(raw, reason: "the Sales Navigator lead id is missing or malformed")
            }
            value = "sales:" + lead
            return
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
