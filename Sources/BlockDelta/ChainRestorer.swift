public import Logging

/// What a restore or a verification went through.
public struct ChainApplyResult: Sendable {
    /// Backups applied or checked, oldest first.
    public var backups: Int = 0
    /// Data blocks read and checked against their digests.
    public var dataBlocks: UInt64 = 0
    /// Bytes of block data read (uncompressed).
    public var dataBytes: UInt64 = 0
    /// Bytes of block data as stored in the data files (frames, for compressed data).
    public var storedBytes: UInt64 = 0
    /// Blocks recorded as zero regions.
    public var zeroBlocks: UInt64 = 0
    /// The volume size at the newest backup.
    public var volumeSize: UInt64 = 0

    /// Creates an empty result.
    public init() {}
}

/// A reusable buffer for one chunk of block data being verified.
///
/// Owned by one thread at a time, handed over under the pipeline's lock (the `@unchecked Sendable` invariant).
final class VerifySlot: @unchecked Sendable {
    let data: UnsafeMutableRawBufferPointer
    let digests: UnsafeMutableRawBufferPointer
    /// Framed data: block `i`'s zstd payload at `i × block size`.
    let staging: UnsafeMutableRawBufferPointer?
    /// Framed data: each block's frame word and the file offset of its frame.
    var frames: [(word: BlockFrameWord, offset: UInt64)] = []
    var blockCount = 0
    var byteCount = 0
    let hasher = SHA256Hasher()

    init(bufferSize: Int, blocks: Int, framed: Bool) {
        data = .allocate(byteCount: bufferSize, alignment: 4096)
        digests = .allocate(byteCount: blocks * BlockDigest.byteCount, alignment: 16)
        staging = framed ? .allocate(byteCount: bufferSize, alignment: 16) : nil
        frames.reserveCapacity(framed ? blocks : 0)
    }

    deinit {
        data.deallocate()
        digests.deallocate()
        staging?.deallocate()
    }
}

/// Restores a chain of backups (a Full, then each backup that builds on it, oldest first) onto a regular
/// file or a block device, or verifies it without writing.
///
/// Every data block is hashed and compared with its `.bmpsha` digest before it is written (after it is
/// decompressed, for framed data: the frames are read in order, decompressed and checked in parallel). Files are
/// written sparse: zero regions become holes. Backups are applied in order, so a block changed by a later
/// backup is written once per backup that holds it; the cost is the size of the incrementals.
public enum ChainRestorer {
    /// Opens and checks the frames of every backup of `chain` and that they form a chain: the first is a
    /// Full, each next one's parent is the one before, all share one volume, block size and Full.
    public static func open(chain: [VolumeBackupFiles]) throws(BlockDeltaError) -> [VolumeBackupReader] {
        guard let first = chain.first else { throw .invalidArgument("an empty chain has nothing to restore") }
        var readers: [VolumeBackupReader] = []
        for files in chain {
            let reader = try VolumeBackupReader(files: files)
            let descriptor = reader.descriptor
            if let previous = readers.last?.descriptor {
                guard descriptor.parentID == previous.backupID else {
                    throw .mismatchedChain(
                        path: files.regions,
                        "backup \(descriptor.backupID) builds on \(descriptor.parentID.map { "\($0)" } ?? "nothing"), not on \(previous.backupID)")
                }
                guard descriptor.volumeID == previous.volumeID, descriptor.fullID == previous.fullID,
                    descriptor.geometry.blockSize == previous.geometry.blockSize,
                    descriptor.geometry.volumeSize >= previous.geometry.volumeSize
                else {
                    throw .mismatchedChain(path: files.regions, "volume, Full or block size differ from the backup before it")
                }
            } else if descriptor.level != .full {
                throw .mismatchedChain(path: first.regions, "a chain must start with a Full backup, this is \(descriptor.level)")
            }
            readers.append(reader)
        }
        return readers
    }

    /// Reads every block of every backup of the chain and checks it against its digest, writing nothing.
    public static func verify(
        chain: [VolumeBackupFiles], configuration: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> ChainApplyResult {
        try check(open(chain: chain), configuration: configuration)
    }

    /// Reads and checks every block of opened backups, writing nothing.
    private static func check(
        _ readers: [VolumeBackupReader], configuration: ParallelIOConfiguration, control: ScanControl? = nil
    ) throws(BlockDeltaError) -> ChainApplyResult {
        var result = ChainApplyResult()
        for reader in readers {
            try apply(reader, to: nil, skipZeroRegions: true, configuration: configuration, control: control, result: &result)
        }
        return result
    }

    /// Restores the chain onto `target`.
    ///
    /// A regular file (or a path that does not exist) is written as `<target>.osbackup-partial`, made
    /// sparse, synced and renamed over `target` only when every block was verified and written, so a failed
    /// restore leaves `target` untouched. A block device must hold the volume (else nothing is written) and
    /// the whole chain is verified before its first byte is overwritten.
    public static func restore(
        chain: [VolumeBackupFiles], to target: String, configuration: ParallelIOConfiguration = .init(),
        logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let readers = try open(chain: chain)
        let volumeSize = readers.last!.descriptor.geometry.volumeSize
        let existing = try? OpenFile.openForReading(target)
        if let existing, try existing.isBlockDevice() {
            return try overwrite(readers, target: target, configuration: configuration, logger: logger)
        }
        if let existing {
            _ = try existing.size()  // refuses a directory or anything else that is not a file or device
        }
        let partial = target + ".osbackup-partial"
        let file = try OpenFile.openForWriting(partial, create: true, truncate: true)
        do throws(BlockDeltaError) {
            try file.truncate(to: volumeSize)
            var result = ChainApplyResult()
            for (index, reader) in readers.enumerated() {
                try apply(
                    reader, to: RestoreTarget(file: file, isBlockDevice: false), skipZeroRegions: index == 0,
                    configuration: configuration, result: &result)
            }
            try file.sync()
            try file.close()
            guard rename(partial, target) == 0 else { throw .io("rename to \(target)", path: partial, errno: errno) }
            try syncDirectory(parentDirectory(of: target))
            return result
        } catch {
            try? file.close()
            unlink(partial)
            throw error
        }
    }

    /// Restores the chain in place onto an existing block device or file that already holds a volume
    /// of at least the chain's size (a Cinder volume attached to the proxy, which may show up as a link
    /// to a file): the whole chain is verified before the first byte is overwritten, then every block of
    /// the volume is written, zero regions included (the target's old contents are never trusted), and
    /// the target is synced. Bytes past the chain's volume size are left as they are.
    ///
    /// `control` stops the work at the next chunk when cancelled (the target then holds part of the
    /// chain: a new volume is deleted by its caller, an existing one must be restored again).
    public static func overwrite(
        chain: [VolumeBackupFiles], target: String, configuration: ParallelIOConfiguration = .init(), control: ScanControl? = nil,
        logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        try overwrite(open(chain: chain), target: target, configuration: configuration, control: control, logger: logger)
    }

    private static func overwrite(
        _ readers: [VolumeBackupReader], target: String, configuration: ParallelIOConfiguration, control: ScanControl? = nil,
        logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let volumeSize = readers.last!.descriptor.geometry.volumeSize
        let existing = try OpenFile.openForReading(target)
        let isBlockDevice = try existing.isBlockDevice()
        let size = try existing.size()
        try existing.close()
        guard size >= volumeSize else {
            throw .targetTooSmall(path: target, targetSize: size, volumeSize: volumeSize)
        }
        logger.info("verifying the chain before overwriting the target", metadata: ["osb-target": "\(target)"])
        _ = try check(readers, configuration: configuration, control: control)
        let output = try OpenFile.openForWriting(target, create: false)
        do throws(BlockDeltaError) {
            var result = ChainApplyResult()
            for reader in readers {
                try apply(
                    reader, to: RestoreTarget(file: output, isBlockDevice: isBlockDevice), skipZeroRegions: false,
                    configuration: configuration, control: control, result: &result)
            }
            try output.sync()
            try output.close()
            return result
        } catch {
            try? output.close()
            throw error
        }
    }

    /// Where and how blocks are written.
    struct RestoreTarget {
        let file: OpenFile
        let isBlockDevice: Bool
    }

    /// Applies (or, with no target, only checks) one backup.
    static func apply(
        _ backup: VolumeBackupReader, to target: RestoreTarget?, skipZeroRegions: Bool,
        configuration: ParallelIOConfiguration, control: ScanControl? = nil, result: inout ChainApplyResult
    ) throws(BlockDeltaError) {
        let geometry = backup.descriptor.geometry
        let blockSize = geometry.blockSize
        let blocksPerChunk = configuration.blocksPerChunk(blockSize: blockSize)
        let dataBlocks = backup.summary.dataBlocks
        let chunkCount = Int((dataBlocks + UInt64(blocksPerChunk) - 1) / UInt64(blocksPerChunk))
        let framed = backup.data.header.layout == .framed
        let slots = (0..<configuration.chunksInFlight).map { _ in
            VerifySlot(bufferSize: blocksPerChunk * blockSize, blocks: blocksPerChunk, framed: framed)
        }
        let data = backup.data
        let digests = backup.digests
        let dataBytes = backup.summary.dataBytes
        let frames = framed ? FrameCursor(data: data) : nil
        let regions = try backup.regions.makeCursor()
        var region = try regions.next()
        var regionOffset: UInt64 = 0  // blocks of `region` already applied

        func applyZeroRegions() throws(BlockDeltaError) {
            while let current = region, current.kind == .zero {
                if let target, !skipZeroRegions {
                    let offset = geometry.offset(ofBlock: current.firstBlock)
                    try target.file.zeroRange(
                        at: offset, length: geometry.byteCount(ofBlocks: current.firstBlock, count: current.blockCount),
                        isBlockDevice: target.isBlockDevice)
                }
                result.zeroBlocks += current.blockCount
                region = try regions.next()
            }
        }

        /// The data blocks of `chunk`, the chunk's first data block and its bytes.
        @Sendable func extent(_ chunk: Int) -> (first: UInt64, blocks: Int, length: Int) {
            let first = UInt64(chunk) * UInt64(blocksPerChunk)
            let blocks = Int(min(UInt64(blocksPerChunk), dataBlocks - first))
            let length = Int(min(UInt64(blocks * blockSize), dataBytes - first * UInt64(blockSize)))
            return (first, blocks, length)
        }

        try OrderedPipeline.run(
            chunkCount: chunkCount, workerCount: configuration.workerCount, slots: slots,
            makeWorker: { framed ? BlockDecompressor() : nil },
            load: frames.map { frames in loadFrames(from: frames, blockSize: blockSize, extent: extent) },
            work: { chunk, slot, decompressor throws(BlockDeltaError) in
                let (firstDataBlock, blocks, length) = extent(chunk)
                let start = firstDataBlock * UInt64(blockSize)
                if !framed {
                    try data.file.readExactly(
                        into: UnsafeMutableRawBufferPointer(rebasing: slot.data[0..<length]),
                        at: UInt64(FormatHeader.size) + start)
                }
                try digests.readRecords(from: firstDataBlock, count: blocks, into: slot.digests)
                for index in 0..<blocks {
                    let blockStart = index * blockSize
                    let blockEnd = min(blockStart + blockSize, length)
                    var storedAt = UInt64(FormatHeader.size) + start + UInt64(blockStart)
                    if framed {
                        let (word, offset) = slot.frames[index]
                        storedAt = offset
                        if word.isCompressed, let decompressor {
                            let payload = UnsafeRawBufferPointer(
                                rebasing: slot.staging![blockStart..<(blockStart + word.storedLength)])
                            if let failure = decompressor.decompress(
                                payload, into: UnsafeMutableRawBufferPointer(rebasing: slot.data[blockStart..<blockEnd]))
                            {
                                throw .malformed(
                                    path: data.path,
                                    "zstd frame of data block \(firstDataBlock + UInt64(index)) at byte \(offset) \(failure)",
                                    hint: "the file is damaged; restore from another copy")
                            }
                        }
                    }
                    let bytes = UnsafeRawBufferPointer(rebasing: slot.data[blockStart..<blockEnd])
                    let expected = BlockDigest(
                        bytes: UnsafeRawBufferPointer(rebasing: slot.digests[(index * 32)..<(index * 32 + 32)]))
                    guard slot.hasher.digest(of: bytes) == expected else {
                        throw .digestMismatch(path: data.path, block: firstDataBlock + UInt64(index), offset: storedAt)
                    }
                }
                slot.blockCount = blocks
                slot.byteCount = length
            },
            consume: { _, slot throws(BlockDeltaError) in
                if let control, control.isCancelled { throw .cancelled(path: backup.data.path) }
                var taken = 0  // blocks of this chunk already placed
                while taken < slot.blockCount {
                    try applyZeroRegions()
                    guard let current = region else {
                        throw .malformed(path: backup.regions.file.path, "has fewer data blocks than its data file")
                    }
                    let count = Int(min(current.blockCount - regionOffset, UInt64(slot.blockCount - taken)))
                    let firstBlock = current.firstBlock + regionOffset
                    let byteCount = Int(geometry.byteCount(ofBlocks: firstBlock, count: UInt64(count)))
                    if let target {
                        let startByte = taken * blockSize
                        try target.file.write(
                            UnsafeRawBufferPointer(rebasing: slot.data[startByte..<(startByte + byteCount)]),
                            at: geometry.offset(ofBlock: firstBlock))
                    }
                    taken += count
                    regionOffset += UInt64(count)
                    if regionOffset == current.blockCount {
                        region = try regions.next()
                        regionOffset = 0
                    }
                }
                result.dataBlocks += UInt64(slot.blockCount)
                result.dataBytes += UInt64(slot.byteCount)
            })
        try applyZeroRegions()
        if region != nil {
            throw .malformed(path: backup.regions.file.path, "has more data blocks than its data file holds")
        }
        try frames?.expectEnd()
        result.storedBytes += backup.storedBytes
        result.backups += 1
        result.volumeSize = geometry.volumeSize
    }
}

extension ChainRestorer {
    /// The ordered load stage of a framed data file: reads each frame of the chunk, raw payloads into place
    /// and zstd payloads into the slot's staging buffer.
    fileprivate static func loadFrames(
        from frames: FrameCursor, blockSize: Int, extent: @escaping @Sendable (Int) -> (first: UInt64, blocks: Int, length: Int)
    ) -> @Sendable (Int, VerifySlot) throws(BlockDeltaError) -> Void {
        return { (chunk: Int, slot: VerifySlot) throws(BlockDeltaError) -> Void in
            let (_, blocks, length) = extent(chunk)
            slot.frames.removeAll(keepingCapacity: true)
            for index in 0..<blocks {
                let start = index * blockSize
                let end = min(start + blockSize, length)
                let offset = frames.offset
                let word = try frames.next(
                    blockBytes: end - start, raw: UnsafeMutableRawBufferPointer(rebasing: slot.data[start..<end]),
                    staging: UnsafeMutableRawBufferPointer(rebasing: slot.staging![start..<end]))
                slot.frames.append((word, offset))
            }
        }
    }
}

/// The directory part of `path` ("." for a bare name).
func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let parent = String(path[..<slash])
    return parent.isEmpty ? "/" : parent
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
