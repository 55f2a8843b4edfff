public import BlockDelta

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive advisory lock (`flock`) on a file, held until ``release()`` or until the process exits, so a
/// crashed holder never leaves a stale lock behind.
public final class FileLock: Sendable {
    /// The lock file.
    public let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Takes the lock without waiting; nil when another process (or another open of the file) holds it.
    public static func tryAcquire(_ path: String) throws(BlockDeltaError) -> FileLock? {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw .io("open lock file", path: path, errno: errno) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            if code == EWOULDBLOCK { return nil }
            throw .io("flock", path: path, errno: code)
        }
        return FileLock(path: path, descriptor: descriptor)
    }

    /// Releases the lock (closing the descriptor also does).
    public func release() {
        _ = flock(descriptor, LOCK_UN)
    }
}
