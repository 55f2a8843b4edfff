public import Foundation

/// The identity of one backup: a time-ordered UUID (version 7), so that sorting ids sorts backups by age.
public struct BackupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 16 bytes of the UUID.
    public let uuid: UUID

    /// Wraps an existing UUID.
    public init(uuid: UUID) {
        self.uuid = uuid
    }

    /// Parses the canonical UUID text form.
    public init?(_ text: String) {
        guard let uuid = UUID(uuidString: text) else { return nil }
        self.uuid = uuid
    }

    /// A new id for a backup taken at `date`: 48 bits of Unix milliseconds, then random bits.
    public static func generate(at date: Date = Date()) -> BackupID {
        var bytes = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in 0..<16 { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return BackupID(bytes: bytes)!
    }

    /// Reads an id from 16 bytes; nil for the all-zero value, which formats use for "none".
    public init?(bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        guard array.count == 16, array.contains(where: { $0 != 0 }) else { return nil }
        uuid = UUID(
            uuid: (
                array[0], array[1], array[2], array[3], array[4], array[5], array[6], array[7],
                array[8], array[9], array[10], array[11], array[12], array[13], array[14], array[15]
            ))
    }

    /// The 16 bytes of the id.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: uuid.uuid) { Array($0) }
    }

    /// Lower-case canonical UUID text.
    public var description: String { uuid.uuidString.lowercased() }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

/// The Bacula level of a backup, which decides what it is compared against.
public enum BackupLevel: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Every block of the volume: data and zero regions cover it whole.
    case full = 0
    /// The blocks that changed since the previous backup of any level.
    case incremental = 1
    /// The blocks that changed since the last Full.
    case differential = 2

    /// The level's name as the command line and Bacula spell it.
    public var description: String {
        switch self {
        case .full: "full"
        case .incremental: "incremental"
        case .differential: "differential"
        }
    }

    /// Parses `full`, `incremental`, `differential` (or Bacula's one-letter `F`, `I`, `D`).
    public init?(name: String) {
        switch name.lowercased() {
        case "full", "f": self = .full
        case "incremental", "incr", "i": self = .incremental
        case "differential", "diff", "d": self = .differential
        default: return nil
        }
    }
}
