/// The `.bmp` region list: which blocks one backup holds, as data or as zeros.
///
/// After the common header (see ``FormatHeader``), records of 16 bytes, little-endian:
///
/// ```
/// offset size  field
///      0    8  first block
///      8    4  block count (at least 1)
///     12    1  kind: 1 data (bytes in the .bvmdk), 2 zero (reads as zeros, no bytes stored)
///     13    3  reserved, zero
/// ```
///
/// Regions are sorted, do not overlap, and lie inside the volume. A Full's regions cover every block.
/// The trailer counts regions; its checksum covers header, records and count.
public struct Region: Hashable, Sendable, CustomStringConvertible {
    /// What a region holds.
    public enum Kind: UInt8, Sendable {
        /// Blocks whose bytes are stored in the block data file.
        case data = 1
        /// Blocks that read as zeros; nothing is stored.
        case zero = 2
    }

    /// The encoded size of one region record.
    public static let encodedSize = 16
    /// The most blocks one record can hold; longer runs are split.
    public static let maximumBlockCount = UInt64(UInt32.max)

    /// The first block of the region.
    public var firstBlock: UInt64
    /// How many blocks the region holds.
    public var blockCount: UInt64
    /// Data or zero.
    public var kind: Kind

    /// Creates a region.
    public init(firstBlock: UInt64, blockCount: UInt64, kind: Kind) {
        precondition(blockCount >= 1 && blockCount <= Self.maximumBlockCount)
        self.firstBlock = firstBlock
        self.blockCount = blockCount
        self.kind = kind
    }

    /// One past the last block (`UInt64.max` for a crafted record whose end would overflow).
    public var endBlock: UInt64 {
        let (end, overflow) = firstBlock.addingReportingOverflow(blockCount)
        return overflow ? .max : end
    }

    /// The 16 record bytes.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.encodedSize)
        bytes.appendLittleEndian(firstBlock)
        bytes.appendLittleEndian(UInt32(blockCount))
        bytes += [kind.rawValue, 0, 0, 0]
        return bytes
    }

    /// Decodes one record; nil if the kind or the reserved bytes are wrong or the count is zero.
    public init?(record: UnsafeRawBufferPointer) {
        let bytes = Array(record)
        guard bytes.count == Self.encodedSize, let kind = Kind(rawValue: bytes[12]), bytes[13..<16].allSatisfy({ $0 == 0 })
        else { return nil }
        let count = bytes.littleEndian(UInt32.self, at: 8)
        guard count > 0 else { return nil }
        self.init(firstBlock: bytes.littleEndian(UInt64.self, at: 0), blockCount: UInt64(count), kind: kind)
    }

    public var description: String { "\(kind) blocks \(firstBlock)..<\(endBlock)" }
}

/// Totals of a validated region list.
public struct RegionSummary: Hashable, Sendable {
    /// How many region records.
    public var regionCount: UInt64 = 0
    /// How many blocks are stored as data.
    public var dataBlocks: UInt64 = 0
    /// How many blocks are recorded as zeros.
    public var zeroBlocks: UInt64 = 0
    /// How many bytes the data blocks hold (the last block of the volume may be short).
    public var dataBytes: UInt64 = 0

    /// Creates an empty summary.
    public init() {}
}

/// Reads a `.bmp` file: checks it whole, then hands out its regions in order.
public struct RegionListReader: Sendable {
    /// The underlying file.
    public let file: FormatFileReader

    /// Opens and checks the frame of the region list at `path`.
    public init(path: String) throws(BlockDeltaError) {
        file = try FormatFileReader(path: path, expecting: .regionList)
    }

    /// Checks the checksum and every record (order, bounds, a Full covering the volume); returns the totals.
    public func validate() throws(BlockDeltaError) -> RegionSummary {
        try file.verifyChecksum()
        let geometry = file.descriptor.geometry
        var summary = RegionSummary()
        var nextFree: UInt64 = 0
        let cursor = try makeCursor()
        while let region = try cursor.next() {
            // Compared without computing firstBlock + blockCount, which a crafted record could overflow.
            guard region.firstBlock >= nextFree, region.firstBlock <= geometry.blockCount,
                region.blockCount <= geometry.blockCount - region.firstBlock
            else {
                throw .malformed(
                    path: file.path,
                    "region \(summary.regionCount) (\(region)) overlaps the previous one or ends past block \(geometry.blockCount)")
            }
            if file.descriptor.level == .full, region.firstBlock != nextFree {
                throw .malformed(path: file.path, "Full backup leaves blocks \(nextFree)..<\(region.firstBlock) uncovered")
            }
            summary.regionCount += 1
            switch region.kind {
            case .data:
                summary.dataBlocks += region.blockCount
                summary.dataBytes += geometry.byteCount(ofBlocks: region.firstBlock, count: region.blockCount)
            case .zero:
                summary.zeroBlocks += region.blockCount
            }
            nextFree = region.endBlock
        }
        if file.descriptor.level == .full, nextFree != geometry.blockCount {
            throw .malformed(path: file.path, "Full backup leaves blocks \(nextFree)..<\(geometry.blockCount) uncovered")
        }
        return summary
    }

    /// A cursor over the regions in file order, reading through a buffer of about `bufferBytes`.
    public func makeCursor(bufferBytes: Int = RecordCursor.defaultBufferBytes) throws(BlockDeltaError) -> RegionCursor {
        RegionCursor(records: file.makeCursor(bufferBytes: bufferBytes), path: file.path)
    }
}

/// Hands out the regions of a region list in order.
public final class RegionCursor {
    private let records: RecordCursor
    private let path: String

    init(records: RecordCursor, path: String) {
        self.records = records
        self.path = path
    }

    /// The next region, or nil after the last.
    public func next() throws(BlockDeltaError) -> Region? {
        let index = records.nextIndex
        guard let record = try records.next() else { return nil }
        guard let region = Region(record: record) else {
            throw .malformed(path: path, "region record \(index) is malformed (zero length, unknown kind or reserved bytes set)")
        }
        return region
    }
}
