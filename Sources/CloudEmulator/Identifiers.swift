import Foundation

/// Ids and timestamps in the formats the real services use.
enum Identifiers {
    /// A Keystone-style id: 32 lower-case hex digits.
    static func hex() -> String { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    /// A Nova/Cinder-style id: a lower-case UUID.
    static func uuid() -> String { UUID().uuidString.lowercased() }

    /// A deterministic Keystone-style id derived from `name` (roles, seeded objects without ids).
    static func stable(_ kind: String, _ name: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var out = ""
        for round in 0..<2 {
            for byte in "\(kind)/\(name)/\(round)".utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            out += String(format: "%016llx", hash)
        }
        return out
    }

    /// A deterministic UUID derived from `name`.
    static func stableUUID(_ kind: String, _ name: String) -> String {
        let hex = Array(stable(kind, name))
        func part(_ range: Range<Int>) -> String { String(hex[range]) }
        return "\(part(0..<8))-\(part(8..<12))-4\(part(13..<16))-a\(part(17..<20))-\(part(20..<32))"
    }

    /// An opaque token string of Fernet-like length (183 characters), URL-safe.
    static func token() -> String {
        var bytes = [UInt8](repeating: 0, count: 135)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "gAAAAA" + text.prefix(177)
    }

    /// A Keystone audit id: 22 URL-safe base64 characters.
    static func auditID() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        return String(
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").prefix(22))
    }

    /// Keystone's timestamp: `2026-11-22T02:34:49.000000Z`.
    static func keystoneTime(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let text = formatter.string(from: date)  // 2026-11-22T02:34:49Z
        return String(text.dropLast()) + ".000000Z"
    }

    /// Cinder's timestamp: `2026-11-22T01:38:49.425598`, no zone.
    static func cinderTime(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let text = String(formatter.string(from: date).dropLast())
        let micros = Int((date.timeIntervalSince1970 - date.timeIntervalSince1970.rounded(.down)) * 1_000_000)
        return text + String(format: ".%06d", micros)
    }

    /// Nova's timestamp: `2026-11-22T01:38:49Z`.
    static func novaTime(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
