public import BlockDelta

/// The id of a volume as the engine files it: a Cinder volume UUID, or an id given for a local image.
///
/// It names files in the working directory and the repository, so it is checked once, here: 1 to 54
/// ASCII letters, digits, `.`, `_` or `-`, not starting with a dot.
public struct VolumeID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The id text.
    public let rawValue: String

    /// The id, or nil when `text` could escape a folder or is too long.
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= BackupDescriptor.maximumVolumeIDLength, !text.hasPrefix("."),
            text.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0))
            })
        else { return nil }
        rawValue = text
    }

    /// The id, or a usage error that names it.
    public static func validated(_ text: String) throws(BlockDeltaError) -> VolumeID {
        guard let id = VolumeID(text) else {
            throw .invalidArgument(
                "volume id '\(text)' must be 1 to \(BackupDescriptor.maximumVolumeIDLength) letters, digits, '.', '_' or '-', not starting with '.'")
        }
        return id
    }

    /// The id text.
    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = VolumeID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid volume id '\(text)'"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
