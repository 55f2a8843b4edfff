/// A password, application-credential secret or token: usable by the client, invisible everywhere else.
///
/// `description`, `debugDescription` and string interpolation all print `<redacted>`, and the value is not
/// `Codable`, so a secret cannot reach a log line, an error message or a `.conf` file by accident; only
/// ``reveal()`` (used where a request body or header is built) gives the text.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    private let value: String

    /// Wraps a secret value.
    public init(_ value: String) {
        self.value = value
    }

    /// The secret text, for the one place that must send it.
    public func reveal() -> String { value }

    /// Whether the secret is empty.
    public var isEmpty: Bool { value.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
