import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A sparse file for tests: a size, the byte ranges written, and holes everywhere else.
public struct SparseFile: Sendable {
    /// The file's size in bytes.
    public var size: Int
    /// What is written where, in the order it is written (a later write wins where two overlap).
    public var writes: [(offset: Int, bytes: [UInt8])] = []

    /// A file of `size` bytes of holes.
    public init(size: Int) { self.size = size }

    /// The file's bytes as a reader sees them: zeros in the holes.
    public var content: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        for write in writes { bytes.replaceSubrange(write.offset..<(write.offset + write.bytes.count), with: write.bytes) }
        return bytes
    }

    /// Whether any byte of `range` was written (else it is a hole on a file system that keeps holes).
    public func isWritten(_ range: Range<Int>) -> Bool {
        writes.contains { $0.offset < range.upperBound && $0.offset + $0.bytes.count > range.lowerBound }
    }

    /// Adds a write of `bytes` at `offset` (clipped to the size).
    public mutating func write(_ bytes: [UInt8], at offset: Int) {
        let count = min(bytes.count, size - offset)
        guard count > 0 else { return }
        writes.append((offset, Array(bytes.prefix(count))))
    }

    /// Creates the file at `path` (replacing it): truncated to the size, then only the writes are written.
    public func create(at path: String) throws {
        unlink(path)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(descriptor) }
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        for write in writes {
            let written = write.bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(write.offset)) }
            guard written == write.bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
    }

    /// Whether the file system of `directory` keeps holes and reports them to `SEEK_DATA` (ext4, XFS, tmpfs
    /// do; ramfs and some network file systems report every byte as data).
    public static func holesAreReported(in directory: String) -> Bool {
        let path = "\(directory)/.osbackup-hole-probe-\(getpid())"
        defer { unlink(path) }
        var probe = SparseFile(size: 1 << 20)
        probe.write([1], at: 0)
        guard (try? probe.create(at: path)) != nil else { return false }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return lseek(descriptor, 4096, SEEK_HOLE_VALUE) == 4096
    }

    /// `SEEK_HOLE` (4 on Linux; Glibc's module does not export it).
    private static let SEEK_HOLE_VALUE: Int32 = 4
}
