/// Makes server, volume and flavor names safe to use in one path component of the backup namespace.
///
/// The UUID beside a name stays authoritative; the name only helps a person find the file, and `.name`
/// files keep the original. Slashes, backslashes, NUL, control characters (C0, DEL, C1), Unicode format
/// characters (the bidi overrides such as U+202E are format characters, not control ones) and line or
/// paragraph separators become `_`; a leading dot and the second dot of every `..` become `_`, so no
/// component is `.`, `..` or hidden. The result is capped on a character boundary so that the component,
/// with what is added around it, stays within ``componentLimit`` UTF-8 bytes; an empty result becomes
/// `unnamed`. The output is valid UTF-8 whatever the process locale.
public enum PathSafeName {
    /// The longest path component Linux filesystems and tar's pax names take, in bytes.
    public static let componentLimit = 255
    /// The longest name kept when nothing else shares its component, in UTF-8 bytes.
    public static let maximumLength = 100

    /// The path-safe form of `name`, at most `min(maximumLength, componentLimit - reservedBytes)` bytes.
    ///
    /// - Parameter reservedBytes: the bytes the caller adds to the same component (UUID, `_`, suffix).
    public static func make(_ name: String, reservedBytes: Int = 0) -> String {
        let limit = max(1, min(maximumLength, componentLimit - reservedBytes))
        var result = ""
        var previousWasDot = false
        for character in name {
            var replacement = character
            if isUnsafe(character) || (character == "." && (result.isEmpty || previousWasDot)) { replacement = "_" }
            previousWasDot = replacement == "."
            guard result.utf8.count + String(replacement).utf8.count <= limit else { break }
            result.append(replacement)
        }
        return result.isEmpty ? "unnamed" : result
    }

    private static func isUnsafe(_ character: Character) -> Bool {
        character == "/" || character == "\\"
            || character.unicodeScalars.contains { scalar in
                let category = scalar.properties.generalCategory
                return category == .control || category == .format || category == .lineSeparator
                    || category == .paragraphSeparator || category == .surrogate || category == .privateUse
                    || category == .unassigned
            }
    }
}
