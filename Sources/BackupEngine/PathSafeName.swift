/// Makes server and volume names safe to use as one path component of the backup namespace.
///
/// The UUID beside a name stays authoritative; the name only helps a person find the file. Slashes, NUL,
/// control characters and a leading dot become `_`, and the result is capped at ``maximumLength`` UTF-8
/// bytes (on a character boundary); an empty result becomes `unnamed`.
public enum PathSafeName {
    /// The longest name kept, in UTF-8 bytes.
    public static let maximumLength = 100

    /// The path-safe form of `name`.
    public static func make(_ name: String) -> String {
        var result = ""
        for character in name {
            let isUnsafe = character == "/" || character == "\\" || character.unicodeScalars.contains {
                $0.value < 0x20 || $0.value == 0x7F || $0.properties.generalCategory == .format
            }
            let replacement: Character = isUnsafe ? "_" : character
            guard result.utf8.count + String(replacement).utf8.count <= maximumLength else { break }
            result.append(replacement)
        }
        if result.hasPrefix(".") { result = "_" + result.dropFirst() }
        return result.isEmpty ? "unnamed" : result
    }
}
