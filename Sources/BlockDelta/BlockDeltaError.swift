/// An error from the block-delta engine: what failed, on which file, and what the operator can do.
///
/// The struct keeps its cases private so that new ones never break callers; ``isConfigurationError``
/// tells a command-line front end whether to answer with its usage exit code.
public struct BlockDeltaError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable {
        case io
        case malformed
        case digestMismatch
        case mismatchedChain
        case targetTooSmall
        case invalidArgument
        case cancelled
        case busy
    }

    private let code: Code
    /// The `errno` of a failed system call, when that is what failed.
    public let errorNumber: Int32?
    /// The file or device the error is about, when there is one.
    public let path: String?
    /// What went wrong, in one sentence without the path.
    public let reason: String
    /// What to do next, when there is something useful to say.
    public let hint: String?

    private init(_ code: Code, path: String?, reason: String, hint: String? = nil, errorNumber: Int32? = nil) {
        self.code = code
        self.errorNumber = errorNumber
        self.path = path
        self.reason = reason
        self.hint = hint
    }

    /// A system call failed on `path`.
    public static func io(_ operation: String, path: String, errno code: Int32, hint: String? = nil) -> Self {
        Self(.io, path: path, reason: "\(operation) failed: \(String(cString: strerror(code)))", hint: hint, errorNumber: code)
    }

    /// An operation on `path` failed for a reason that is not an `errno`.
    public static func failed(path: String, _ reason: String, hint: String? = nil) -> Self {
        Self(.io, path: path, reason: reason, hint: hint)
    }

    /// A file does not have the structure its format requires.
    public static func malformed(path: String, _ reason: String, hint: String? = nil) -> Self {
        Self(.malformed, path: path, reason: reason, hint: hint)
    }

    /// A block's data does not hash to the digest recorded for it.
    public static func digestMismatch(path: String, block: UInt64, offset: UInt64) -> Self {
        Self(
            .digestMismatch, path: path,
            reason: "data of volume block \(block) (stored at byte \(offset)) does not match its recorded SHA-256",
            hint: "the backup is damaged; restore from another copy")
    }

    /// The files of a backup, or the backups of a chain, do not belong together.
    public static func mismatchedChain(path: String, _ reason: String) -> Self {
        Self(.mismatchedChain, path: path, reason: reason, hint: "the backup files are mixed up or incomplete")
    }

    /// A restore target cannot hold the volume.
    public static func targetTooSmall(path: String, targetSize: UInt64, volumeSize: UInt64) -> Self {
        Self(
            .targetTooSmall, path: path,
            reason: "target holds \(targetSize) bytes but the volume is \(volumeSize) bytes; nothing was written",
            hint: "restore to a device or file of at least \(volumeSize) bytes")
    }

    /// A caller passed a value the engine cannot use (a block size, a level, a path of the wrong kind).
    public static func invalidArgument(_ reason: String, path: String? = nil, hint: String? = nil) -> Self {
        Self(.invalidArgument, path: path, reason: reason, hint: hint)
    }

    /// The work was cancelled (a cancel request reached the scan or the restore between two chunks).
    public static func cancelled(path: String) -> Self {
        Self(.cancelled, path: path, reason: "cancelled")
    }

    /// A lock on `path` is held by another process (another backup of the same volume).
    public static func busy(path: String, _ reason: String, hint: String? = nil) -> Self {
        Self(.busy, path: path, reason: reason, hint: hint)
    }

    /// Whether a lock held elsewhere stopped the work.
    public var isBusy: Bool { code == .busy }

    /// Whether the work was cancelled rather than failed.
    public var isCancellation: Bool { code == .cancelled }

    /// Whether a write failed because the disk or a quota is full.
    public var isNoSpace: Bool { errorNumber == ENOSPC || errorNumber == EDQUOT }

    /// Whether the error comes from the caller's input rather than from the data or the system.
    public var isConfigurationError: Bool { code == .invalidArgument }

    /// Whether the error is a checksum or structure failure of stored data.
    public var isDataIntegrityError: Bool {
        code == .malformed || code == .digestMismatch || code == .mismatchedChain
    }

    /// One line: the path, what is wrong, and the hint.
    public var description: String {
        var line = path.map { "\($0): \(reason)" } ?? reason
        if let hint { line += " (\(hint))" }
        return line
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
