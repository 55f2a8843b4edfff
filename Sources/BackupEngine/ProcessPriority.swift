public import BlockDelta
import CLinuxIO

import Foundation

/// The CPU and I/O priority a job runs at (`--nice`, `--ionice`), as the `nice` and `ionice` tools set them,
/// so that a backup does not compete with the proxy's other work.
///
/// Linux keeps both per thread, and a new thread inherits its creator's: ``apply()`` sets them on every
/// thread the process has when it is called (the runtime starts its threads early), and those that come
/// later inherit them.
public struct ProcessPriority: Sendable {
    /// An I/O scheduling class.
    public enum IOClass: Int32, Sendable, Hashable {
        /// Served first (needs root).
        case realtime = 1
        /// The default, with a level 0 (highest) to 7.
        case bestEffort = 2
        /// Served only when no one else wants the disk.
        case idle = 3
    }

    /// The niceness, -20 (highest) to 19 (lowest); nil leaves it.
    public var nice: Int32?
    /// The I/O class and level; nil leaves it.
    public var io: (IOClass, Int32)?

    /// Creates a priority.
    public init(nice: Int32? = nil, io: (IOClass, Int32)? = nil) {
        self.nice = nice
        self.io = io
    }

    /// Parses `--ionice`: `idle`, `best-effort[:LEVEL]`, `realtime[:LEVEL]` (or the class numbers 1–3).
    public static func parseIOClass(_ text: String) throws(BlockDeltaError) -> (IOClass, Int32) {
        let parts = text.lowercased().split(separator: ":", maxSplits: 1).map(String.init)
        let classes: [String: IOClass] = [
            "realtime": .realtime, "rt": .realtime, "1": .realtime, "best-effort": .bestEffort, "be": .bestEffort, "2": .bestEffort,
            "idle": .idle, "3": .idle,
        ]
        guard let name = parts.first, let ioClass = classes[name] else {
            throw .invalidArgument("--ionice '\(text)': use idle, best-effort[:0-7] or realtime[:0-7]")
        }
        var level: Int32 = ioClass == .idle ? 0 : 4
        if parts.count == 2 {
            guard ioClass != .idle, let parsed = Int32(parts[1]), (0...7).contains(parsed) else {
                throw .invalidArgument("--ionice '\(text)': the level is 0 (highest) to 7, and idle has none")
            }
            level = parsed
        }
        return (ioClass, level)
    }

    /// The priority ``apply()`` set for this process, which the engine's worker threads take as they start
    /// (some thread pools set their threads' niceness themselves, so inheritance alone does not hold).
    public static var current: ProcessPriority? { applied.withLock { $0 } }
    private static let applied = LockedValue<ProcessPriority?>(nil)

    /// Sets the priority on the calling thread (errors are ignored: ``apply()`` has checked it can).
    public func applyToCurrentThread() {
        let thread: Int32 = 0  // on Linux, id 0 is the calling thread for both calls
        if let nice { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice) }
        if let (ioClass, level) = io { _ = osb_ioprio_set(thread, ioClass.rawValue, level) }
    }

    /// Sets the priority on every thread of this process, and on every worker thread the engine starts later.
    public func apply() throws(BlockDeltaError) {
        guard nice != nil || io != nil else { return }
        Self.applied.withLock { $0 = self }
        let threads = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
        for thread in threads.isEmpty ? [0] : threads {
            if let nice, setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice) != 0 {
                throw .io("setpriority (--nice \(nice))", path: "/proc/self/task/\(thread)", errno: errno)
            }
            if let (ioClass, level) = io, osb_ioprio_set(thread, ioClass.rawValue, level) != 0 {
                throw .io("ioprio_set (--ionice)", path: "/proc/self/task/\(thread)", errno: errno)
            }
        }
    }
}
