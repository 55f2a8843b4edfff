import Foundation

/// The caller's handle on a running scan or restore: it asks the work to stop, and it hears how far the
/// work has come.
///
/// The scan checks ``isCancelled`` once per chunk on its ordered consumer, so a cancel stops it within one
/// chunk and the partial output is abandoned as on any other error. ``progress`` is called from that same
/// consumer (one thread at a time, in chunk order) with the bytes of the source done so far; keep it cheap.
/// ``didRead`` is called by the reading threads themselves after each read, with the bytes they read
/// (holes found and not read do not count), and may block them: that is how a read rate cap holds the
/// readers (the pipeline is bounded, so nothing reads ahead meanwhile).
public final class ScanControl: Sendable {
    private let cancelled = LockedValue(false)
    /// Called after each chunk with the source bytes done so far.
    public let progress: @Sendable (UInt64) -> Void
    /// Called on a reading thread after each read with the bytes read; may block it.
    public let didRead: @Sendable (UInt64) -> Void

    /// Creates a control; `progress` and `didRead` default to nothing.
    public init(
        progress: @escaping @Sendable (UInt64) -> Void = { _ in }, didRead: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) {
        self.progress = progress
        self.didRead = didRead
    }

    /// Asks the work to stop at the next chunk boundary.
    public func cancel() { cancelled.withLock { $0 = true } }

    /// Whether a stop was asked for.
    public var isCancelled: Bool { cancelled.withLock { $0 } }
}

/// A value behind a lock: the small piece of shared state a `Sendable` class needs.
///
/// Every access goes through ``withLock(_:)``, which is the invariant behind `@unchecked Sendable`.
public final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    /// Creates the box.
    public init(_ value: Value) { self.value = value }

    /// Runs `body` on the value with the lock held.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
