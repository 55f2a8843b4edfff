public import Logging
import Synchronization

/// A log handler that keeps every line, to prove what never reaches a log.
public final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // `lines` is guarded by the mutex; the rest is LogHandler's value-like configuration.
    private let lines = Mutex<[String]>([])

    /// Metadata added to every line.
    public var metadata: Logger.Metadata = [:]
    /// Everything from `trace` up by default.
    public var logLevel: Logger.Level = .trace

    /// An empty handler at `trace`.
    public init() {}

    /// One metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Keeps the line: level, message, metadata.
    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
    }

    /// Every line so far.
    public var text: String { lines.withLock { $0.joined(separator: "\n") } }
    /// How many lines so far.
    public var count: Int { lines.withLock { $0.count } }
}
