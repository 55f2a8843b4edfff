/// The working-dir hash map (`.map`): one SHA-256 digest for every block of the volume as it was at one
/// backup, the only state an Incremental or Differential needs.
///
/// After the common header (see ``FormatHeader``; its backup id is the backup the map describes), one
/// 32-byte record per block in block order; a block that reads as all zeros is recorded as 32 zero bytes
/// (``BlockDigest/zeroBlockMarker``). The trailer counts blocks; its checksum covers header, records and
/// count. A 1 TiB volume at 64 KiB blocks has a 512 MiB map; it is streamed, never held in memory.
public struct HashMapReader: Sendable {
    /// The underlying file.
    public let file: FormatFileReader

    /// Opens the map at `path`, checks its frame and checksum and that it has one record per block.
    public init(path: String) throws(BlockDeltaError) {
        file = try FormatFileReader(path: path, expecting: .hashMap)
        let blockCount = file.descriptor.geometry.blockCount
        guard file.recordCount == blockCount else {
            throw .malformed(path: path, "holds \(file.recordCount) digests for a volume of \(blockCount) blocks")
        }
        try file.verifyChecksum()
    }

    /// The backup the map describes.
    public var descriptor: BackupDescriptor { file.descriptor }

    /// A cursor over the digests in block order.
    public func makeCursor() -> RecordCursor { file.makeCursor() }
}

/// The paths of the three files one backup of one volume consists of.
public struct VolumeBackupFiles: Hashable, Sendable {
    /// The `.bmp` region list.
    public var regions: String
    /// The `.bmpsha` digest list.
    public var digests: String
    /// The `.bvmdk` block data.
    public var data: String

    /// Creates the set from three paths.
    public init(regions: String, digests: String, data: String) {
        self.regions = regions
        self.digests = digests
        self.data = data
    }

    /// The paths in the order they are written and checked.
    public var all: [String] { [regions, digests, data] }
}

/// Writes one backup of one volume: regions, digests and data, coalescing adjacent blocks of one kind.
///
/// Blocks must arrive in increasing order. Nothing is valid until ``finish()`` returns: on an error,
/// call ``abandon()`` and discard the files.
///
/// Block data goes in one of two ways: ``appendData(firstBlock:digests:bytes:compressedFrame:)`` writes the
/// bytes itself, in order; or the bytes are written elsewhere through ``dataPlacement`` (the scan's workers,
/// in parallel) and ``recordPlacedData(firstBlock:digests:byteCount:)`` with ``recordStoredBytes(_:at:)``
/// record them here, in order. Both give the same files.
public final class VolumeBackupWriter {
    private let regions: FormatFileWriter
    private let digests: FormatFileWriter
    private let data: BlockDataFileWriter
    private let geometry: VolumeGeometry
    private var pending: Region?
    private var nextBlock: UInt64 = 0
    /// Totals so far.
    public private(set) var summary = RegionSummary()
    /// Bytes of block data stored so far: the data bytes, or for a framed file its frames.
    public private(set) var storedBytes: UInt64 = 0

    /// Creates the three files with their headers; the data file has `dataLayout` (framed data holds
    /// the compressed frames given to ``appendData(firstBlock:digests:bytes:compressedFrame:)``).
    public init(
        files: VolumeBackupFiles, descriptor: BackupDescriptor, dataLayout: BlockDataLayout = .contiguous
    ) throws(BlockDeltaError) {
        geometry = descriptor.geometry
        regions = try FormatFileWriter(path: files.regions, header: FormatHeader(kind: .regionList, descriptor: descriptor))
        digests = try FormatFileWriter(path: files.digests, header: FormatHeader(kind: .digestList, descriptor: descriptor))
        data = try BlockDataFileWriter(
            path: files.data, header: FormatHeader(kind: .blockData, descriptor: descriptor, layout: dataLayout))
    }

    /// The layout of the data file.
    public var dataLayout: BlockDataLayout { data.header.layout }

    /// Writes block data at offsets after the data file's header, from any thread: the bytes that
    /// ``recordPlacedData(firstBlock:digests:byteCount:)`` and ``recordStoredBytes(_:at:)`` then record.
    public var dataPlacement: BlockDataPlacement { data.placement }

    /// Records `digests.count` consecutive data blocks starting at `firstBlock`, with their bytes.
    ///
    /// In a framed data file, block `index` of the run is stored as the zstd frame `compressedFrame(index)`
    /// returns (which must be shorter than the block), or raw when it returns nil; a contiguous data file
    /// stores `bytes` and never asks.
    public func appendData(
        firstBlock: UInt64, digests blockDigests: some Collection<BlockDigest>, bytes: UnsafeRawBufferPointer,
        compressedFrame: (_ index: Int) -> UnsafeRawBufferPointer? = { _ in nil }
    ) throws(BlockDeltaError) {
        let count = UInt64(blockDigests.count)
        precondition(count > 0 && bytes.count == Int(geometry.byteCount(ofBlocks: firstBlock, count: count)))
        var words = [UInt8]()
        var payloads: [UnsafeRawBufferPointer] = []
        switch data.header.layout {
        case .contiguous:
            payloads = [bytes]
        case .framed:
            var start = 0
            for index in 0..<Int(count) {
                let blockBytes = Int(geometry.byteCount(ofBlocks: firstBlock + UInt64(index), count: 1))
                let frame = compressedFrame(index)
                let payload = frame ?? UnsafeRawBufferPointer(rebasing: bytes[start..<(start + blockBytes)])
                let word = BlockFrameWord(storedLength: payload.count, isCompressed: frame != nil)
                precondition(word.fits(blockBytes: blockBytes), "a zstd frame must be shorter than its block")
                words.appendLittleEndian(word.encoded)
                payloads.append(payload)
                start += blockBytes
            }
        }
        let offset = storedBytes
        let stored = try words.withBytes { wordBytes throws(BlockDeltaError) -> UInt64 in
            // In a framed file each payload follows its block's frame word.
            let parts =
                wordBytes.isEmpty
                ? payloads
                : payloads.indices.flatMap { index in
                    [UnsafeRawBufferPointer(rebasing: wordBytes[(index * BlockFrameWord.size)..<((index + 1) * BlockFrameWord.size)]), payloads[index]]
                }
            try data.placement.write(parts, atRecordOffset: offset)
            return parts.reduce(0) { $0 + UInt64($1.count) }
        }
        try recordPlacedData(firstBlock: firstBlock, digests: blockDigests, byteCount: UInt64(bytes.count))
        try recordStoredBytes(stored, at: offset)
    }

    /// Records `digests.count` consecutive data blocks starting at `firstBlock` holding `byteCount` bytes
    /// (uncompressed), whose stored bytes were written through ``dataPlacement``.
    public func recordPlacedData(
        firstBlock: UInt64, digests blockDigests: some Collection<BlockDigest>, byteCount: UInt64
    ) throws(BlockDeltaError) {
        let count = UInt64(blockDigests.count)
        precondition(count > 0 && byteCount == geometry.byteCount(ofBlocks: firstBlock, count: count))
        try extend(firstBlock: firstBlock, count: count, kind: .data)
        for digest in blockDigests {
            try digests.append(digest)
            data.addDigestToChecksum(digest)
        }
        summary.dataBlocks += count
        summary.dataBytes += byteCount
    }

    /// Records `count` bytes of block data written through ``dataPlacement`` at record offset `offset`,
    /// which must be where the bytes stored so far end: the data file holds no gap and no overlap.
    public func recordStoredBytes(_ count: UInt64, at offset: UInt64) throws(BlockDeltaError) {
        guard offset == storedBytes else {
            throw .failed(
                path: data.path, "block data placed at record offset \(offset) where \(storedBytes) bytes are stored",
                hint: "this is a bug in osbackup; report it with the log")
        }
        storedBytes += count
    }

    /// Records `count` consecutive blocks that read as zeros.
    public func appendZero(firstBlock: UInt64, count: UInt64) throws(BlockDeltaError) {
        precondition(count > 0)
        try extend(firstBlock: firstBlock, count: count, kind: .zero)
        summary.zeroBlocks += count
    }

    private func extend(firstBlock: UInt64, count: UInt64, kind: Region.Kind) throws(BlockDeltaError) {
        precondition(firstBlock >= nextBlock && firstBlock + count <= geometry.blockCount, "blocks out of order")
        nextBlock = firstBlock + count
        var first = firstBlock
        var remaining = count
        if var region = pending, region.kind == kind, region.endBlock == first {
            let room = Region.maximumBlockCount - region.blockCount
            let taken = min(room, remaining)
            region.blockCount += taken
            pending = region
            first += taken
            remaining -= taken
            if remaining == 0 { return }
        }
        while remaining > 0 {
            if let region = pending { try write(region) }
            let taken = min(Region.maximumBlockCount, remaining)
            pending = Region(firstBlock: first, blockCount: taken, kind: kind)
            first += taken
            remaining -= taken
        }
    }

    private func write(_ region: Region) throws(BlockDeltaError) {
        try region.encoded().withBytes { bytes throws(BlockDeltaError) in try regions.append(bytes) }
        summary.regionCount += 1
    }

    /// Writes the trailers, syncs and closes the three files; returns the totals.
    public func finish() throws(BlockDeltaError) -> RegionSummary {
        if let region = pending {
            try write(region)
            pending = nil
        }
        precondition(data.header.layout == .framed || storedBytes == summary.dataBytes, "raw data stored as recorded")
        try data.finish(recordCount: storedBytes)
        try digests.finish(recordCount: summary.dataBlocks)
        try regions.finish(recordCount: summary.regionCount)
        return summary
    }

    /// Closes the files without trailers after an error.
    public func abandon() {
        regions.abandon()
        digests.abandon()
        data.abandon()
    }
}

/// One backup of one volume, opened and checked: the three files agree, their checksums hold and their
/// counts match. Block data is verified block by block against the digests as it is read.
public struct VolumeBackupReader: Sendable {
    /// The region list.
    public let regions: RegionListReader
    /// The digest list.
    public let digests: FormatFileReader
    /// The block data.
    public let data: FormatFileReader
    /// The totals of the region list.
    public let summary: RegionSummary

    /// The backup's descriptor.
    public var descriptor: BackupDescriptor { regions.file.descriptor }

    /// Bytes of block data as stored: the data bytes, or for a framed file its frames.
    public var storedBytes: UInt64 { data.recordCount }

    /// Opens and checks the three files.
    public init(files: VolumeBackupFiles) throws(BlockDeltaError) {
        // Each file's own checksum first, so that damage is reported against the damaged file.
        regions = try RegionListReader(path: files.regions)
        summary = try regions.validate()
        digests = try FormatFileReader(path: files.digests, expecting: .digestList)
        try digests.verifyChecksum()
        data = try FormatFileReader(path: files.data, expecting: .blockData)
        for other in [digests, data] where other.descriptor != regions.file.descriptor {
            throw .mismatchedChain(path: other.path, "header describes another backup than \(files.regions)")
        }
        guard digests.recordCount == summary.dataBlocks else {
            throw .malformed(
                path: files.digests, "holds \(digests.recordCount) digests but the region list has \(summary.dataBlocks) data blocks")
        }
        switch data.header.layout {
        case .contiguous:
            guard data.recordCount == summary.dataBytes else {
                throw .malformed(
                    path: files.data, "holds \(data.recordCount) bytes but the region list needs \(summary.dataBytes)",
                    hint: "the file is truncated or from another backup")
            }
        case .framed:
            // Each frame is a word and at most the block's bytes.
            let words = UInt64(BlockFrameWord.size) * summary.dataBlocks
            guard data.recordCount >= words, data.recordCount - words <= summary.dataBytes else {
                throw .malformed(
                    path: files.data,
                    "holds \(data.recordCount) bytes of frames, which cannot be the \(summary.dataBlocks) blocks (\(summary.dataBytes) bytes) the region list needs",
                    hint: "the file is truncated or from another backup")
            }
        }
        try data.verifyBlockDataChecksum(digests: digests)
    }
}
