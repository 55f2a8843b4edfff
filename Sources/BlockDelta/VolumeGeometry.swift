/// The size of a volume and the block size it is cut into.
///
/// Blocks are numbered from 0; every block is ``blockSize`` bytes except the last, which holds what is
/// left when the volume size is not a multiple of the block size.
public struct VolumeGeometry: Hashable, Sendable, CustomStringConvertible {
    /// The smallest block size the engine accepts (one page, and `O_DIRECT`-aligned).
    public static let minimumBlockSize = 4096
    /// The largest block size the engine accepts.
    public static let maximumBlockSize = 64 << 20
    /// The block size used when none is asked for: see docs/benchmarks.md for the figures behind it.
    public static let defaultBlockSize = 64 << 10

    /// The block size in bytes: a power of two from 4 KiB to 64 MiB.
    public let blockSize: Int
    /// The volume size in bytes.
    public let volumeSize: UInt64

    /// Creates a geometry, checking the block size.
    public init(blockSize: Int, volumeSize: UInt64) throws(BlockDeltaError) {
        guard Self.isValidBlockSize(blockSize) else {
            throw .invalidArgument(
                "block size \(blockSize) is not a power of two from \(Self.minimumBlockSize) to \(Self.maximumBlockSize)",
                hint: "use for example 65536 (64 KiB), 262144 or 1048576")
        }
        // 2^62 bytes (4 EiB) is far past any volume; the limit keeps every block and byte count in range.
        guard volumeSize <= Self.maximumVolumeSize else {
            throw .invalidArgument("volume size \(volumeSize) is past the largest osbackup handles (\(Self.maximumVolumeSize) bytes)")
        }
        self.blockSize = blockSize
        self.volumeSize = volumeSize
    }

    /// The largest volume size: block counts and byte offsets computed from it cannot overflow.
    public static let maximumVolumeSize: UInt64 = 1 << 62

    /// Whether `size` can be used as a block size.
    public static func isValidBlockSize(_ size: Int) -> Bool {
        size >= minimumBlockSize && size <= maximumBlockSize && size & (size - 1) == 0
    }

    /// How many blocks cover the volume.
    public var blockCount: UInt64 {
        (volumeSize + UInt64(blockSize) - 1) / UInt64(blockSize)
    }

    /// The byte offset of `block` in the volume.
    public func offset(ofBlock block: UInt64) -> UInt64 {
        block * UInt64(blockSize)
    }

    /// The length in bytes of `block` (the last block may be short).
    public func length(ofBlock block: UInt64) -> Int {
        let start = offset(ofBlock: block)
        return Int(min(UInt64(blockSize), volumeSize - start))
    }

    /// The number of bytes covered by `count` blocks starting at `first`, clipped to the volume end.
    public func byteCount(ofBlocks first: UInt64, count: UInt64) -> UInt64 {
        let start = offset(ofBlock: first)
        let end = min(volumeSize, offset(ofBlock: first + count))
        return end - start
    }

    public var description: String { "\(volumeSize) bytes in \(blockCount) blocks of \(blockSize)" }
}
