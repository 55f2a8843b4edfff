import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file or device a restore writes, opened twice: through the page cache, and with `O_DIRECT` for the
/// block-aligned writes where the target allows it.
///
/// Direct writes skip the copy into the page cache and the writeback behind it, which on a 2-core proxy
/// costs as much CPU as checking the blocks (docs/benchmarks.md), and they do not evict the proxy's cache.
/// What cannot go direct (the short last block of a volume, a filesystem without `O_DIRECT`) goes through
/// the page cache; both descriptors write the same inode, so one `fsync` makes everything durable.
struct RestoreTarget: Sendable {
    /// The target through the page cache.
    let file: OpenFile
    /// The target with `O_DIRECT`; nil where it cannot be opened so.
    let direct: OpenFile?
    /// Whether the target is a block device (zero ranges are zeroed with `BLKZEROOUT` rather than punched).
    let isBlockDevice: Bool
    /// Whether zero extents are written: the target's old contents are not trusted. A new sparse file
    /// already reads as zeros there and keeps its holes.
    let writesZeroExtents: Bool

    /// The alignment direct writes keep: offsets, lengths and buffer addresses (block sizes are multiples).
    static let directAlignment = 4096

    /// Opens `path` for writing (it must exist), and once more with `O_DIRECT` when it can be.
    init(path: String, isBlockDevice: Bool, writesZeroExtents: Bool, logger: Logger) throws(BlockDeltaError) {
        file = try OpenFile.openForWriting(path, create: false)
        do throws(BlockDeltaError) {
            direct = try OpenFile.openForWriting(path, create: false, direct: true)
        } catch {
            logger.debug(
                "the restore target takes no direct writes; writing through the page cache",
                metadata: ["osb-target": "\(path)", "osb-error": "\(error)"])
            direct = nil
        }
        self.isBlockDevice = isBlockDevice
        self.writesZeroExtents = writesZeroExtents
    }

    /// Whether block-aligned writes bypass the page cache.
    var writesDirectly: Bool { direct != nil }

    /// Writes `bytes` at `offset`: the aligned part through ``direct`` when offset and buffer are aligned,
    /// the rest through the page cache. A direct write the target refuses as unaligned (`EINVAL`: a device
    /// with larger sectors) is written again through the page cache.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockDeltaError) {
        let alignment = Self.directAlignment
        let aligned = bytes.count / alignment * alignment
        guard let direct, aligned > 0, offset % UInt64(alignment) == 0,
            UInt(bitPattern: bytes.baseAddress) % UInt(alignment) == 0
        else {
            try file.write(bytes, at: offset)
            return
        }
        do throws(BlockDeltaError) {
            try direct.write(UnsafeRawBufferPointer(rebasing: bytes[0..<aligned]), at: offset)
        } catch where error.errorNumber == EINVAL {
            try file.write(UnsafeRawBufferPointer(rebasing: bytes[0..<aligned]), at: offset)
        }
        if aligned < bytes.count {
            try file.write(UnsafeRawBufferPointer(rebasing: bytes[aligned...]), at: offset + UInt64(aligned))
        }
    }

    /// Makes `length` bytes at `offset` read as zeros (see ``OpenFile/zeroRange(at:length:isBlockDevice:)``).
    func zeroRange(at offset: UInt64, length: UInt64) throws(BlockDeltaError) {
        try file.zeroRange(at: offset, length: length, isBlockDevice: isBlockDevice)
    }

    /// Flushes everything written, through either descriptor, to stable storage, and closes both.
    func syncAndClose() throws(BlockDeltaError) {
        try file.sync()
        try direct?.close()
        try file.close()
    }

    /// Closes both descriptors after a failure.
    func abandon() {
        try? direct?.close()
        try? file.close()
    }
}
