/// The reusable buffers of one chunk of a pass, and what its worker did.
///
/// Owned by one thread at a time, handed over under the pipeline's lock (the `@unchecked Sendable`
/// invariant): the load stage fills the plan and the frames, a worker reads, checks and writes, the consumer
/// adds up the counts.
final class RestoreSlot: @unchecked Sendable {
    /// Block `i` of the chunk at `i × block size`, uncompressed; ``FrameReader/spill`` bytes of room at the end.
    let data: UnsafeMutableRawBufferPointer
    let digests: UnsafeMutableRawBufferPointer
    /// Framed data: block `i`'s zstd payload at `i × block size` (with the same room at the end).
    let staging: UnsafeMutableRawBufferPointer?
    /// Framed data: each block's frame word and the file offset of its frame.
    var frames: [(word: BlockFrameWord, offset: UInt64)]
    var plan = ChunkPlan()
    var counts = ChainApplyResult()
    let hasher = SHA256Hasher()

    init(blocks: Int, blockSize: Int, framed: Bool) {
        let bytes = blocks * blockSize + FrameReader.spill
        data = .allocate(byteCount: bytes, alignment: 4096)
        digests = .allocate(byteCount: blocks * BlockDigest.byteCount, alignment: 16)
        staging = framed ? .allocate(byteCount: bytes, alignment: 16) : nil
        frames = Array(repeating: (BlockFrameWord(storedLength: 0, isCompressed: false), 0), count: framed ? blocks : 0)
    }

    deinit {
        data.deallocate()
        digests.deallocate()
        staging?.deallocate()
    }
}

/// One pass over a chain: reads the data blocks of a stream of extents (the merged index for a restore,
/// every region for a verification), checks each against its digest, and writes it to the target at its
/// volume offset when there is one.
///
/// Extents are cut into chunks (``ChunkPlanner``) and run through an ``OrderedPipeline``: its ordered load
/// stage plans each chunk and reads the frames of framed data (which can only be walked front to back);
/// the workers read contiguous data with `pread` at computed offsets, decompress, hash and compare, then
/// `pwrite` at the blocks' fixed offsets (or zero their ranges), all in parallel; the ordered consumer adds
/// up the counts and checks for a cancel. Blocks of different chunks never overlap, so the writes need no
/// order. At most `chunksInFlight` chunks are in memory. A target written with `O_DIRECT` gets twice the
/// workers: a direct `pwrite` waits for the disk, and while half of them wait the others keep the cores busy.
struct ChainPass {
    /// The opened chain, oldest first.
    let readers: [VolumeBackupReader]
    /// Where blocks go; nil to only check them.
    let target: RestoreTarget?
    let configuration: ParallelIOConfiguration
    let control: ScanControl?

    /// Zero blocks one chunk may zero: larger than data, since zeroing moves no bytes through the worker.
    static let zeroChunkFactor: UInt64 = 64

    /// Runs the pass over the extents `makeSource` returns (called twice: once to count the chunks, once
    /// to hand them out). With `checkFramesEnd`, every frame of every framed data file must have been read
    /// (a pass over all of them).
    func run(
        extents makeSource: () throws(BlockDeltaError) -> any ChainExtentSource, checkFramesEnd: Bool = false
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let newest = readers.last!.descriptor.geometry
        let blockSize = newest.blockSize
        let blocksPerChunk = configuration.blocksPerChunk(blockSize: blockSize)
        let zeroBlocksPerChunk = target?.writesZeroExtents == true ? UInt64(blocksPerChunk) * Self.zeroChunkFactor : nil
        let totals = try ChunkPlanner(
            source: makeSource(), dataBlocksPerChunk: blocksPerChunk, zeroBlocksPerChunk: zeroBlocksPerChunk
        ).count()
        let planner = ChunkPlanner(source: try makeSource(), dataBlocksPerChunk: blocksPerChunk, zeroBlocksPerChunk: zeroBlocksPerChunk)
        let frameReaders = readers.map { $0.data.header.layout == .framed ? FrameReader(backup: $0) : nil }
        let framed = frameReaders.contains { $0 != nil }
        let workerCount = target?.writesDirectly == true ? 2 * configuration.workerCount : configuration.workerCount
        let slotCount = min(max(configuration.chunksInFlight, workerCount + 2), max(totals.chunks, workerCount))
        let slots = (0..<slotCount).map { _ in
            RestoreSlot(blocks: blocksPerChunk, blockSize: blockSize, framed: framed)
        }
        let pass = self
        var result = ChainApplyResult()
        try OrderedPipeline.run(
            chunkCount: totals.chunks, workerCount: workerCount, slots: slots,
            makeWorker: { framed ? BlockDecompressor() : nil },
            load: { _, slot throws(BlockDeltaError) in
                guard let plan = try planner.next() else {
                    throw .malformed(
                        path: pass.readers.last!.regions.file.path, "the chain's region lists changed while they were read",
                        hint: "run the restore again when no other job writes to the repository")
                }
                slot.plan = plan
                try pass.loadFrames(of: slot, from: frameReaders)
            },
            work: { _, slot, decompressor throws(BlockDeltaError) in
                try pass.process(slot, decompressor: decompressor)
            },
            consume: { _, slot throws(BlockDeltaError) in
                if let control, control.isCancelled { throw .cancelled(path: target?.file.path ?? readers.last!.data.path) }
                result.add(slot.counts)
                control?.progress(result.dataBytes)
            })
        for frames in frameReaders {
            try frames?.expectEnd(unlessUnread: !checkFramesEnd)
        }
        result.backups = readers.count
        result.volumeSize = newest.volumeSize
        result.zeroBlocks = totals.zeroBlocks
        return result
    }

    /// The ordered load stage: reads the frames of the chunk's blocks that are stored in framed data files.
    private func loadFrames(of slot: RestoreSlot, from frameReaders: [FrameReader?]) throws(BlockDeltaError) {
        let blockSize = readers.last!.descriptor.geometry.blockSize
        for piece in slot.plan.pieces {
            guard case .data(let backup, let firstDataBlock) = piece.extent.source, let frames = frameReaders[backup] else { continue }
            try frames.skip(to: firstDataBlock)
            for index in 0..<Int(piece.extent.blockCount) {
                let slotBlock = piece.slotBlock + index
                let start = slotBlock * blockSize
                let end = start + blockSize + FrameReader.spill
                slot.frames[slotBlock] = try frames.next(
                    raw: UnsafeMutableRawBufferPointer(rebasing: slot.data[start..<end]),
                    staging: UnsafeMutableRawBufferPointer(rebasing: slot.staging![start..<end]))
            }
        }
    }

    /// A worker's part: read, decompress, check and write (or zero) every piece of the chunk.
    private func process(_ slot: RestoreSlot, decompressor: BlockDecompressor?) throws(BlockDeltaError) {
        if let control, control.isCancelled { throw .cancelled(path: target?.file.path ?? readers.last!.data.path) }
        let newest = readers.last!.descriptor.geometry
        slot.counts = ChainApplyResult()
        for piece in slot.plan.pieces {
            let extent = piece.extent
            guard case .data(let backup, let firstDataBlock) = extent.source else {
                if let target {
                    let length = newest.byteCount(ofBlocks: extent.firstBlock, count: extent.blockCount)
                    try target.zeroRange(at: newest.offset(ofBlock: extent.firstBlock), length: length)
                    slot.counts.zeroedBytes += length
                }
                continue
            }
            let bytes = try check(piece, from: readers[backup], firstDataBlock: firstDataBlock, in: slot, decompressor: decompressor)
            if let target {
                let start = piece.slotBlock * newest.blockSize
                // A block the volume has since grown past its old short end: the rest reads as zeros.
                let length = Int(newest.byteCount(ofBlocks: extent.firstBlock, count: extent.blockCount))
                if length > bytes {
                    UnsafeMutableRawBufferPointer(rebasing: slot.data[(start + bytes)..<(start + length)]).initializeMemory(as: UInt8.self, repeating: 0)
                }
                try target.write(
                    UnsafeRawBufferPointer(rebasing: slot.data[start..<(start + length)]), at: newest.offset(ofBlock: extent.firstBlock))
                slot.counts.writtenBytes += UInt64(length)
            }
        }
    }

    /// Reads (contiguous data) or decompresses (framed data) the blocks of one piece into the slot and checks
    /// each against its digest; returns their bytes.
    private func check(
        _ piece: ChunkPlan.Piece, from backup: VolumeBackupReader, firstDataBlock: UInt64, in slot: RestoreSlot,
        decompressor: BlockDecompressor?
    ) throws(BlockDeltaError) -> Int {
        let geometry = backup.descriptor.geometry
        let blockSize = geometry.blockSize
        let count = Int(piece.extent.blockCount)
        let firstBlock = piece.extent.firstBlock
        let start = piece.slotBlock * blockSize
        let bytes = Int(geometry.byteCount(ofBlocks: firstBlock, count: UInt64(count)))
        let data = backup.data
        let framed = data.header.layout == .framed
        let dataStart = UInt64(FormatHeader.size) + firstDataBlock * UInt64(blockSize)
        if !framed {
            try data.file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: slot.data[start..<(start + bytes)]), at: dataStart)
        }
        try backup.digests.readRecords(
            from: firstDataBlock, count: count,
            into: UnsafeMutableRawBufferPointer(
                rebasing: slot.digests[(piece.slotBlock * BlockDigest.byteCount)..<((piece.slotBlock + count) * BlockDigest.byteCount)]))
        for index in 0..<count {
            let blockStart = start + index * blockSize
            let blockEnd = min(blockStart + blockSize, start + bytes)
            var storedAt = dataStart + UInt64(index * blockSize)
            if framed {
                let (word, offset) = slot.frames[piece.slotBlock + index]
                storedAt = offset
                slot.counts.storedBytes += UInt64(BlockFrameWord.size + word.storedLength)
                if word.isCompressed, let decompressor {
                    let payload = UnsafeRawBufferPointer(rebasing: slot.staging![blockStart..<(blockStart + word.storedLength)])
                    if let failure = decompressor.decompress(
                        payload, into: UnsafeMutableRawBufferPointer(rebasing: slot.data[blockStart..<blockEnd]))
                    {
                        throw .malformed(
                            path: data.path,
                            "zstd frame of data block \(firstDataBlock + UInt64(index)) at byte \(offset) \(failure); it holds volume block \(firstBlock + UInt64(index))",
                            hint: "the file is damaged; restore from another copy")
                    }
                }
            } else {
                slot.counts.storedBytes += UInt64(blockEnd - blockStart)
            }
            let digestStart = (piece.slotBlock + index) * BlockDigest.byteCount
            let expected = BlockDigest(bytes: UnsafeRawBufferPointer(rebasing: slot.digests[digestStart..<(digestStart + BlockDigest.byteCount)]))
            guard slot.hasher.digest(of: UnsafeRawBufferPointer(rebasing: slot.data[blockStart..<blockEnd])) == expected else {
                throw .digestMismatch(path: data.path, block: firstBlock + UInt64(index), offset: storedAt)
            }
        }
        slot.counts.dataBlocks += UInt64(count)
        slot.counts.dataBytes += UInt64(bytes)
        return bytes
    }
}
