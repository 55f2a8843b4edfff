public import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The volume being backed up: a regular file (a raw image) or a block device, read with `pread`.
public struct BlockSource: Sendable {
    /// The path it was opened by.
    public let path: String
    /// The open file.
    public let file: OpenFile
    /// The size in bytes (`BLKGETSIZE64` for a device).
    public let size: UInt64
    /// Whether it is a block device.
    public let isBlockDevice: Bool
    /// Whether reads bypass the page cache (`O_DIRECT`).
    public let usesDirectIO: Bool

    /// The alignment of buffers, offsets and lengths that `O_DIRECT` needs.
    public static let directIOAlignment = 4096

    /// Opens `path`. With `directIO`, asks for `O_DIRECT` and falls back to cached reads, with a log line,
    /// where the filesystem refuses it (tmpfs does).
    public init(path: String, directIO: Bool = false, logger: Logger) throws(BlockDeltaError) {
        self.path = path
        var opened: OpenFile
        var direct = directIO
        do {
            opened = try OpenFile.openForReading(path, direct: directIO)
        } catch where directIO {
            logger.warning(
                "O_DIRECT refused; reading through the page cache", metadata: ["osb-source": "\(path)", "osb-error": "\(error)"])
            opened = try OpenFile.openForReading(path)
            direct = false
        }
        file = opened
        usesDirectIO = direct
        size = try opened.size()
        isBlockDevice = try opened.isBlockDevice()
        if !direct { opened.adviseSequentialRead() }
    }

    /// Reads exactly `length` bytes at `offset` into `buffer`, which must be aligned and large enough for the
    /// length rounded up to ``directIOAlignment``.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, length: Int) throws(BlockDeltaError) {
        let requested = usesDirectIO ? (length + Self.directIOAlignment - 1) / Self.directIOAlignment * Self.directIOAlignment : length
        precondition(requested <= buffer.count)
        let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<requested]), at: offset)
        guard count >= length else {
            throw .failed(
                path: path, "read of \(length) bytes at byte \(offset) returned \(count)",
                hint: "the source shrank while it was read; take the backup again")
        }
    }
}
