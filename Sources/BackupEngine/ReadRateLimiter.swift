public import BlockDelta

import Foundation

/// Caps the rate at which a job reads its sources (`--bwlimit`), over all the volumes it reads at once, so
/// a backup leaves bandwidth to the storage backend's other users.
///
/// A token bucket shared by the scans: each scan reports the bytes it has read after every chunk and is
/// held (its reading thread sleeps; the scan's bounded pipeline stops reading ahead) until the job is back
/// under the rate. Bursts are limited to one second's worth.
public final class ReadRateLimiter: Sendable {
    /// The rate, in bytes per second.
    public let bytesPerSecond: UInt64
    /// When the bytes granted so far are paid for.
    private let paidUntil: LockedValue<ContinuousClock.Instant>

    /// A limiter of `bytesPerSecond` (at least 1).
    public init(bytesPerSecond: UInt64) {
        self.bytesPerSecond = max(1, bytesPerSecond)
        paidUntil = LockedValue(ContinuousClock.now)
    }

    /// Parses a rate: bytes per second with an optional K, M, G or T suffix (powers of 1024), e.g. `200M`.
    public static func parse(_ text: String) throws(BlockDeltaError) -> UInt64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var number = trimmed.hasSuffix("B") ? String(trimmed.dropLast()) : trimmed
        var unit: UInt64 = 1
        if let last = number.last, let multiplier = units[last] {
            unit = multiplier
            number.removeLast()
        }
        guard let value = Double(number), value > 0, value * Double(unit) >= 1, value * Double(unit) < 1e18 else {
            throw .invalidArgument("--bwlimit '\(text)' is not a rate: give bytes per second, e.g. 200M or 1.5G")
        }
        return UInt64(value * Double(unit))
    }

    /// Accounts for `bytes` just read and sleeps the calling (reading) thread while the job is over its rate.
    public func consume(_ bytes: UInt64) {
        guard bytes > 0 else { return }
        let cost = Duration.nanoseconds(Int64(min(Double(bytes) / Double(bytesPerSecond) * 1e9, 1e15)))
        let now = ContinuousClock.now
        let due = paidUntil.withLock { paid in
            // Idle time earns at most one second of burst.
            paid = max(paid, now - .seconds(1)) + cost
            return paid
        }
        let wait = due - now - .seconds(1)
        if wait > .zero { Thread.sleep(forTimeInterval: wait.inSeconds) }
    }

    /// A progress callback for one scan, which reports cumulative bytes, turned into deltas for ``consume(_:)``.
    public func progress() -> @Sendable (UInt64) -> Void {
        let last = LockedValue<UInt64>(0)
        return { [self] done in
            let delta = last.withLock { previous in
                defer { previous = max(previous, done) }
                return done > previous ? done - previous : 0
            }
            consume(delta)
        }
    }
}
