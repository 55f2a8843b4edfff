/// An API microversion, `major.minor` (Nova `2.79`, Cinder `3.66`).
public struct Microversion: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    /// The major version (2 for Nova, 3 for Cinder).
    public var major: Int
    /// The minor version.
    public var minor: Int

    /// Creates a microversion.
    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses `2.79` (and tolerates a leading `v`).
    public init?(_ text: String) {
        let trimmed = text.hasPrefix("v") ? String(text.dropFirst()) : text
        let parts = trimmed.split(separator: ".")
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]) else { return nil }
        self.init(major, minor)
    }

    public init(from decoder: any Decoder) throws {
        let text = try String(from: decoder)
        guard let parsed = Microversion(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a microversion: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        try description.encode(to: encoder)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }

    public var description: String { "\(major).\(minor)" }
}

/// What a service's version document says: the range of microversions it serves.
public struct APIVersionRange: Sendable, Hashable {
    /// The version id (`v2.1`, `v3.0`).
    public var id: String
    /// The lowest microversion served.
    public var minimum: Microversion
    /// The highest microversion served.
    public var maximum: Microversion

    /// Creates a range.
    public init(id: String, minimum: Microversion, maximum: Microversion) {
        self.id = id
        self.minimum = minimum
        self.maximum = maximum
    }

    /// The microversion to use: the highest one both sides know, or nil if the ranges do not meet.
    public func negotiate(clientMinimum: Microversion, clientMaximum: Microversion) -> Microversion? {
        let chosen = min(maximum, clientMaximum)
        return chosen >= max(minimum, clientMinimum) ? chosen : nil
    }
}

/// Version documents: Nova's `{"version": {...}}` at the endpoint, Cinder's `{"versions": [...]}`.
struct VersionDocument: Decodable {
    struct Entry: Decodable {
        var id: String
        var version: String?
        var minVersion: String?
        var status: String?

        enum CodingKeys: String, CodingKey {
            case id, version, status
            case minVersion = "min_version"
        }
    }

    var version: Entry?
    var versions: [Entry]?

    /// The entry whose id starts with `prefix` (`v2.1`, `v3`), with a microversion range.
    func range(idPrefix prefix: String) -> APIVersionRange? {
        let entries = (version.map { [$0] } ?? []) + (versions ?? [])
        guard let entry = entries.first(where: { $0.id.hasPrefix(prefix) }) else { return nil }
        // A service without microversions reports empty strings: it serves only its base version.
        let base = Microversion(entry.id) ?? Microversion(0, 0)
        let maximum = entry.version.flatMap(Microversion.init) ?? base
        let minimum = entry.minVersion.flatMap(Microversion.init) ?? base
        return APIVersionRange(id: entry.id, minimum: minimum, maximum: maximum)
    }
}
