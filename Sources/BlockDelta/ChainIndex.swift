/// A run of volume blocks and where their newest version lives in a chain of backups.
public struct ChainExtent: Hashable, Sendable, CustomStringConvertible {
    /// Where the blocks of an extent come from.
    public enum Source: Hashable, Sendable {
        /// The blocks read as zeros: a zero region of the newest backup that lists them (or no backup lists
        /// them, which a chain written by the scanner never leaves).
        case zero
        /// The blocks are stored in backup `backup` (its index in the chain, oldest first) as its data
        /// blocks `firstDataBlock...` (the index in its digest list and data file).
        case data(backup: Int, firstDataBlock: UInt64)
    }

    /// The first volume block.
    public var firstBlock: UInt64
    /// How many blocks (at least 1).
    public var blockCount: UInt64
    /// Where their bytes are.
    public var source: Source

    /// Creates an extent.
    public init(firstBlock: UInt64, blockCount: UInt64, source: Source) {
        self.firstBlock = firstBlock
        self.blockCount = blockCount
        self.source = source
    }

    /// One past the last block.
    public var endBlock: UInt64 { firstBlock + blockCount }

    /// The first `count` blocks of the extent.
    func prefix(_ count: UInt64) -> ChainExtent {
        precondition(count >= 1 && count <= blockCount)
        return ChainExtent(firstBlock: firstBlock, blockCount: count, source: source)
    }

    /// The extent without its first `count` blocks.
    func dropFirst(_ count: UInt64) -> ChainExtent {
        precondition(count < blockCount)
        var source = source
        if case .data(let backup, let first) = source { source = .data(backup: backup, firstDataBlock: first + count) }
        return ChainExtent(firstBlock: firstBlock + count, blockCount: blockCount - count, source: source)
    }

    /// Whether `next` continues this extent: the next blocks, from the same place.
    func isContinued(by next: ChainExtent) -> Bool {
        guard next.firstBlock == endBlock else { return false }
        switch (source, next.source) {
        case (.zero, .zero):
            return true
        case (.data(let backup, let first), .data(let nextBackup, let nextFirst)):
            return backup == nextBackup && nextFirst == first + blockCount
        default:
            return false
        }
    }

    public var description: String {
        switch source {
        case .zero: "zero blocks \(firstBlock)..<\(endBlock)"
        case .data(let backup, let first): "blocks \(firstBlock)..<\(endBlock) from backup \(backup), data block \(first)"
        }
    }
}

/// Produces extents in some order; a restore or verification pass reads their data blocks.
protocol ChainExtentSource: AnyObject {
    /// The next extent, or nil after the last.
    func next() throws(BlockDeltaError) -> ChainExtent?
}

/// The merged index of a chain: for every block of the newest volume, which backup holds its newest
/// version, or that it reads as zeros.
///
/// Computed from the region lists alone, without reading block data, by merging them (see
/// ``ChainIndexCursor``); nothing is held per block, so it costs the same memory for any volume size.
public struct ChainIndex: Sendable {
    /// The chain, oldest first, as ``ChainRestorer/open(chain:)`` opened and checked it.
    public let readers: [VolumeBackupReader]

    /// Creates the index of an opened chain.
    public init(readers: [VolumeBackupReader]) {
        self.readers = readers
    }

    /// A cursor over the extents of the index, from block 0.
    public func makeCursor() throws(BlockDeltaError) -> ChainIndexCursor {
        try ChainIndexCursor(readers: readers)
    }
}

/// Walks a ``ChainIndex``: extents in block order, covering every block of the newest volume once.
///
/// All region lists are walked together, one cursor each, and at every block the newest backup whose
/// regions cover it wins. Memory is one small record buffer per backup; the work is proportional to the
/// regions of the chain times its length.
public final class ChainIndexCursor: ChainExtentSource {
    /// One backup's region list being walked.
    private struct Lane {
        let regions: RegionCursor
        /// The region at or after the current position; nil when the list is done.
        var region: Region?
        /// Data blocks of this backup in regions before `region`.
        var dataBefore: UInt64 = 0
    }

    private var lanes: [Lane] = []
    private var position: UInt64 = 0
    private let blockCount: UInt64
    private var pending: ChainExtent?

    /// The record buffer of each backup's region cursor: small, since a long chain holds one per backup.
    static let laneBufferBytes = 64 << 10

    /// Starts at block 0 of a chain opened by ``ChainRestorer/open(chain:)``.
    fileprivate init(readers: [VolumeBackupReader]) throws(BlockDeltaError) {
        blockCount = readers.last?.descriptor.geometry.blockCount ?? 0
        for reader in readers {
            let regions = try reader.regions.makeCursor(bufferBytes: Self.laneBufferBytes)
            lanes.append(Lane(regions: regions, region: try regions.next()))
        }
    }

    /// The next extent in block order, as long as possible (adjacent extents from the same place are joined).
    public func next() throws(BlockDeltaError) -> ChainExtent? {
        while let extent = try nextPiece() {
            guard var current = pending else {
                pending = extent
                continue
            }
            if current.isContinued(by: extent) {
                current.blockCount += extent.blockCount
                pending = current
                continue
            }
            pending = extent
            return current
        }
        defer { pending = nil }
        return pending
    }

    /// The next extent where the winning backup or its region changes.
    private func nextPiece() throws(BlockDeltaError) -> ChainExtent? {
        guard position < blockCount else { return nil }
        for index in lanes.indices {
            while let region = lanes[index].region, region.endBlock <= position {
                if region.kind == .data { lanes[index].dataBefore += region.blockCount }
                lanes[index].region = try lanes[index].regions.next()
            }
        }
        // Newest first: the first lane whose region covers the position wins; each newer lane's next region
        // ends the extent where it starts.
        var end = blockCount
        var winner: (lane: Int, region: Region)?
        for index in lanes.indices.reversed() {
            guard let region = lanes[index].region else { continue }
            if region.firstBlock <= position {
                winner = (index, region)
                end = min(end, region.endBlock)
                break
            }
            end = min(end, region.firstBlock)
        }
        let source: ChainExtent.Source
        if let (lane, region) = winner, region.kind == .data {
            source = .data(backup: lane, firstDataBlock: lanes[lane].dataBefore + (position - region.firstBlock))
        } else {
            source = .zero
        }
        let extent = ChainExtent(firstBlock: position, blockCount: end - position, source: source)
        position = end
        return extent
    }
}

/// Every region of every backup of a chain, backup after backup, in each backup's order: what a full
/// verification of the chain reads (the superseded versions of blocks too).
final class ChainRegionsCursor: ChainExtentSource {
    private let readers: [VolumeBackupReader]
    private var backup = 0
    private var regions: RegionCursor?
    private var dataBefore: UInt64 = 0

    /// Starts at the first region of the chain's Full.
    init(readers: [VolumeBackupReader]) {
        self.readers = readers
    }

    /// The next region as an extent, or nil after the newest backup's last.
    func next() throws(BlockDeltaError) -> ChainExtent? {
        while backup < readers.count {
            if regions == nil {
                regions = try readers[backup].regions.makeCursor()
                dataBefore = 0
            }
            if let region = try regions!.next() {
                guard region.kind == .data else {
                    return ChainExtent(firstBlock: region.firstBlock, blockCount: region.blockCount, source: .zero)
                }
                defer { dataBefore += region.blockCount }
                return ChainExtent(
                    firstBlock: region.firstBlock, blockCount: region.blockCount,
                    source: .data(backup: backup, firstDataBlock: dataBefore))
            }
            regions = nil
            backup += 1
        }
        return nil
    }
}
