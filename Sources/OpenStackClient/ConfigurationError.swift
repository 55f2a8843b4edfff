/// A configuration problem: which key, in which file (or variable), what is wrong and what to do.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The key or variable at fault (`clouds.mycloud.auth.auth_url`, `OS_AUTH_URL`).
    public let key: String?
    /// The file or `environment` it was read from.
    public let source: String?
    /// What is wrong.
    public let reason: String
    /// What to do about it.
    public let hint: String?

    /// Creates an error.
    public init(key: String? = nil, source: String? = nil, _ reason: String, hint: String? = nil) {
        self.key = key
        self.source = source
        self.reason = reason
        self.hint = hint
    }

    /// One line: `source: key: reason (hint)`.
    public var description: String {
        var parts: [String] = []
        if let source { parts.append(source) }
        if let key { parts.append(key) }
        parts.append(reason)
        var line = parts.joined(separator: ": ")
        if let hint { line += " (\(hint))" }
        return line
    }
}
