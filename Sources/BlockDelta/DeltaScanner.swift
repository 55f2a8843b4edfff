public import Logging

import Foundation

/// How a scan or a restore spreads its work.
public struct ParallelIOConfiguration: Sendable {
    /// Bytes read per chunk (rounded to whole blocks); each worker holds one chunk at a time.
    public var chunkSize: Int
    /// Threads that read and hash chunks.
    public var workerCount: Int
    /// Chunks in flight at once; memory is about `chunksInFlight × chunkSize`.
    public var chunksInFlight: Int

    /// Creates a configuration; the defaults use every core with 4 MiB chunks.
    public init(
        chunkSize: Int = 4 << 20,
        workerCount: Int? = nil,
        chunksInFlight: Int? = nil
    ) {
        self.chunkSize = chunkSize
        self.workerCount = max(1, workerCount ?? ProcessInfo.processInfo.activeProcessorCount)
        self.chunksInFlight = max(self.workerCount + 1, chunksInFlight ?? 2 * self.workerCount + 2)
    }

    /// Blocks per chunk for `blockSize`.
    func blocksPerChunk(blockSize: Int) -> Int { max(1, chunkSize / blockSize) }
}

/// What a scan found and wrote.
public struct DeltaScanResult: Sendable {
    /// The regions, data blocks and zero blocks written into this backup.
    public var summary: RegionSummary
    /// Blocks read.
    public var blocksScanned: UInt64
    /// Blocks that read as zeros (whether or not they changed).
    public var zeroBlocksSeen: UInt64
    /// Bytes of the source scanned: the volume's size (holes included; see ``holeBytes``).
    public var bytesRead: UInt64
    /// Bytes of the source that were found to be holes of a sparse file and taken as zeros without being
    /// read (0 where the source does not report holes).
    public var holeBytes: UInt64
    /// Bytes of block data stored in the data file: the data bytes, or for framed data its frames.
    public var storedBytes: UInt64
}

/// A reusable buffer with the per-block results of one chunk, and the bytes the chunk stores.
///
/// Owned by one thread at a time: a worker fills it, places and writes its output, the consumer reads it,
/// and the pipeline's lock orders the hand-offs, which is the invariant behind `@unchecked Sendable`.
final class ScanSlot: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    var digests: [BlockDigest]
    var isZero: [Bool]
    /// Whether each block lies wholly in a hole of the source (found, not read).
    var isHole: [Bool]
    /// Whether each block differs from the reference map (every block when there is none).
    var isChanged: [Bool]
    /// The reference map's digests of the chunk's blocks.
    let referenceDigests: UnsafeMutableRawBufferPointer
    /// Block `i`'s zstd frame at `i × block size`, when compressing.
    let frames: UnsafeMutableRawBufferPointer?
    /// Block `i`'s zstd frame length; 0 when it is stored raw.
    var frameLengths: [Int]
    /// Block `i`'s frame word at `4 × i`, when the data file is framed.
    let frameWords: UnsafeMutableRawBufferPointer?
    var blockCount = 0
    /// Bytes of the source in the chunk (the last chunk may be short).
    var byteCount = 0
    /// What the chunk stores in the data file, in order: runs of raw blocks, or frame words and payloads.
    var output: [UnsafeRawBufferPointer] = []
    /// The bytes of ``output``.
    var outputBytes: UInt64 = 0
    /// Where ``output`` was written, in bytes after the data file's header (set only when there is output).
    var outputOffset: UInt64 = 0
    let hasher = SHA256Hasher()

    init(bufferSize: Int, blocks: Int, layout: BlockDataLayout, compressing: Bool) {
        buffer = .allocate(byteCount: bufferSize, alignment: BlockSource.directIOAlignment)
        digests = Array(repeating: .zeroBlockMarker, count: blocks)
        isZero = Array(repeating: false, count: blocks)
        isHole = Array(repeating: false, count: blocks)
        isChanged = Array(repeating: true, count: blocks)
        referenceDigests = .allocate(byteCount: blocks * BlockDigest.byteCount, alignment: 16)
        frames = compressing ? .allocate(byteCount: bufferSize, alignment: 16) : nil
        frameLengths = Array(repeating: 0, count: blocks)
        frameWords = layout == .framed ? .allocate(byteCount: blocks * BlockFrameWord.size, alignment: 16) : nil
        output.reserveCapacity(2 * blocks)
    }

    deinit {
        buffer.deallocate()
        referenceDigests.deallocate()
        frames?.deallocate()
        frameWords?.deallocate()
    }

    /// The zstd frame of block `index`, or nil when it is stored raw.
    func frame(ofBlock index: Int, blockSize: Int) -> UnsafeRawBufferPointer? {
        guard let frames, frameLengths[index] > 0 else { return nil }
        let start = index * blockSize
        return UnsafeRawBufferPointer(rebasing: frames[start..<(start + frameLengths[index])])
    }

    /// Reads the chunk's bytes from `source`: all of them, or with `extents` only the blocks that overlap
    /// data (the others are marked as holes and left unread); returns the bytes read.
    func read(
        from source: BlockSource, at chunkStart: UInt64, blockSize: Int, extents: DataExtentFinder?
    ) throws(BlockDeltaError) -> Int {
        guard let extents else {
            for index in 0..<blockCount { isHole[index] = false }
            try source.read(into: buffer, at: chunkStart, length: byteCount)
            return byteCount
        }
        for index in 0..<blockCount { isHole[index] = true }
        for range in try extents.dataRanges(in: chunkStart..<(chunkStart + UInt64(byteCount))) {
            let first = Int((range.lowerBound - chunkStart) / UInt64(blockSize))
            let end = Int((range.upperBound - chunkStart + UInt64(blockSize) - 1) / UInt64(blockSize))
            for index in first..<end { isHole[index] = false }
        }
        // Whole blocks that overlap data are read, holes in them included (they read as zeros).
        var bytesRead = 0
        var index = 0
        while index < blockCount {
            guard !isHole[index] else {
                index += 1
                continue
            }
            var end = index + 1
            while end < blockCount && !isHole[end] { end += 1 }
            let start = index * blockSize
            let length = min(end * blockSize, byteCount) - start
            try source.read(
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...]), at: chunkStart + UInt64(start), length: length)
            bytesRead += length
            index = end
        }
        return bytesRead
    }

    /// Lays out ``output``: the chunk's changed data blocks as the data file stores them.
    func layOutOutput(blockSize: Int) {
        output.removeAll(keepingCapacity: true)
        outputBytes = 0
        for index in 0..<blockCount where isChanged[index] && !isZero[index] {
            let start = index * blockSize
            let block = UnsafeRawBufferPointer(rebasing: buffer[start..<min(start + blockSize, byteCount)])
            if let frameWords {
                let payload = frame(ofBlock: index, blockSize: blockSize) ?? block
                let word = BlockFrameWord(storedLength: payload.count, isCompressed: payload.baseAddress != block.baseAddress)
                let wordStart = index * BlockFrameWord.size
                frameWords.storeBytes(of: word.encoded.littleEndian, toByteOffset: wordStart, as: UInt32.self)
                output.append(UnsafeRawBufferPointer(rebasing: frameWords[wordStart..<(wordStart + BlockFrameWord.size)]))
                output.append(payload)
                outputBytes += UInt64(BlockFrameWord.size + payload.count)
            } else {
                // Adjacent raw blocks are one run of the buffer.
                if let last = output.last, last.baseAddress! + last.count == block.baseAddress! {
                    output[output.count - 1] = UnsafeRawBufferPointer(start: last.baseAddress, count: last.count + block.count)
                } else {
                    output.append(block)
                }
                outputBytes += UInt64(block.count)
            }
        }
    }
}

/// What one scan worker thread keeps from chunk to chunk.
final class ScanWorker {
    /// Its zstd context, when compressing.
    let compressor: BlockCompressor?
    /// What it learnt of the source's holes, when it finds them.
    let extents: DataExtentFinder?

    init(compressor: BlockCompressor?, extents: DataExtentFinder?) {
        self.compressor = compressor
        self.extents = extents
    }
}

/// The delta scan: reads the whole source, finds zero blocks, hashes the others, compares each block with
/// a reference hash map and writes the blocks that differ (all blocks when there is no reference) as one
/// backup, plus the new full hash map.
///
/// Workers read (skipping the holes of a sparse file), zero-check, hash, compare and (for
/// ``DataEncoding/zstd(level:)``) compress the changed blocks of their chunks in parallel, each with its
/// own zstd context. Each chunk's stored bytes get their place in the data file in chunk order (the sum of
/// the chunks before it) and are then written there by the worker, several chunks at once (`pwritev`), so
/// storing is spread over the cores as hashing and compressing are. One consumer, in chunk order, writes
/// the small files: the new map, the region list and the digest list, and the data file's checksum.
public enum DeltaScanner {
    /// Scans `source` into the backup `files` described by `descriptor` and writes the new map to `newMapPath`.
    ///
    /// `reference` is the map to compare with (nil for a Full). It must have the descriptor's block size and
    /// may be shorter than the volume (a volume that grew: the new blocks count as changed) but not longer.
    /// `dataEncoding` says how the data file is written (raw for streams, zstd for directory repositories).
    public static func scan(
        source: BlockSource,
        descriptor: BackupDescriptor,
        reference: HashMapReader?,
        files: VolumeBackupFiles,
        dataEncoding: DataEncoding = .raw,
        newMapPath: String,
        configuration: ParallelIOConfiguration = .init(),
        control: ScanControl? = nil,
        logger: Logger
    ) throws(BlockDeltaError) -> DeltaScanResult {
        let geometry = descriptor.geometry
        precondition(geometry.volumeSize == source.size, "descriptor and source disagree on the size")
        if let reference {
            let referenceGeometry = reference.descriptor.geometry
            precondition(referenceGeometry.blockSize == geometry.blockSize && referenceGeometry.volumeSize <= geometry.volumeSize)
        }
        let writer = try VolumeBackupWriter(files: files, descriptor: descriptor, dataLayout: dataEncoding.layout)
        let mapWriter: FormatFileWriter
        do {
            mapWriter = try FormatFileWriter(path: newMapPath, header: FormatHeader(kind: .hashMap, descriptor: descriptor))
        } catch {
            writer.abandon()
            throw error
        }
        do {
            let result = try scanBlocks(
                source: source, geometry: geometry, reference: reference, writer: writer, mapWriter: mapWriter,
                dataEncoding: dataEncoding, configuration: configuration, control: control)
            let summary = try writer.finish()
            try mapWriter.finish(recordCount: geometry.blockCount)
            logger.debug(
                "scan finished",
                metadata: [
                    "osb-volume": "\(descriptor.volumeID)", "osb-blocks": "\(result.blocksScanned)",
                    "osb-data-blocks": "\(summary.dataBlocks)", "osb-zero-blocks": "\(summary.zeroBlocks)",
                    "osb-hole-blocks": "\(result.holeBlocks)", "osb-stored-bytes": "\(writer.storedBytes)",
                    "osb-direct-io": "\(source.usesDirectIO)", "osb-finds-holes": "\(source.findsHoles)",
                ])
            return DeltaScanResult(
                summary: summary, blocksScanned: result.blocksScanned, zeroBlocksSeen: result.zeroBlocksSeen,
                bytesRead: geometry.volumeSize, holeBytes: result.holeBytes, storedBytes: writer.storedBytes)
        } catch {
            writer.abandon()
            mapWriter.abandon()
            throw error
        }
    }

    private static func scanBlocks(
        source: BlockSource, geometry: VolumeGeometry, reference: HashMapReader?, writer: VolumeBackupWriter,
        mapWriter: FormatFileWriter, dataEncoding: DataEncoding, configuration: ParallelIOConfiguration,
        control: ScanControl?
    ) throws(BlockDeltaError) -> (blocksScanned: UInt64, zeroBlocksSeen: UInt64, holeBlocks: UInt64, holeBytes: UInt64) {
        let blockSize = geometry.blockSize
        let blocksPerChunk = configuration.blocksPerChunk(blockSize: blockSize)
        let chunkBytes = blocksPerChunk * blockSize
        let blockCount = geometry.blockCount
        let chunkCount = Int((blockCount + UInt64(blocksPerChunk) - 1) / UInt64(blocksPerChunk))
        let slots = (0..<configuration.chunksInFlight).map { _ in
            ScanSlot(bufferSize: chunkBytes, blocks: blocksPerChunk, layout: dataEncoding.layout, compressing: dataEncoding != .raw)
        }
        let referenceBlocks = reference?.descriptor.geometry.blockCount ?? 0
        let placement = writer.dataPlacement
        var zeroBlocksSeen: UInt64 = 0
        var holeBlocks: UInt64 = 0
        var holeBytes: UInt64 = 0

        try OrderedPipeline.run(
            chunkCount: chunkCount, workerCount: configuration.workerCount, slots: slots,
            makeWorker: { () -> ScanWorker in
                var compressor: BlockCompressor?
                if case .zstd(let level) = dataEncoding { compressor = BlockCompressor(level: level) }
                return ScanWorker(compressor: compressor, extents: source.findsHoles ? DataExtentFinder(file: source.file) : nil)
            },
            work: { chunk, slot, worker throws(BlockDeltaError) in
                let firstBlock = UInt64(chunk) * UInt64(blocksPerChunk)
                let blocks = Int(min(UInt64(blocksPerChunk), blockCount - firstBlock))
                let length = Int(geometry.byteCount(ofBlocks: firstBlock, count: UInt64(blocks)))
                slot.blockCount = blocks
                slot.byteCount = length
                let bytesRead = try slot.read(
                    from: source, at: geometry.offset(ofBlock: firstBlock), blockSize: blockSize, extents: worker.extents)
                control?.didRead(UInt64(bytesRead))
                // Blocks past the end of the reference (a volume that grew) are changed.
                let referenced = firstBlock < referenceBlocks ? Int(min(UInt64(blocks), referenceBlocks - firstBlock)) : 0
                if let reference, referenced > 0 {
                    try reference.file.readRecords(from: firstBlock, count: referenced, into: slot.referenceDigests)
                }
                for index in 0..<blocks {
                    let start = index * blockSize
                    let bytes = UnsafeRawBufferPointer(rebasing: slot.buffer[start..<min(start + blockSize, length)])
                    if slot.isHole[index] || ZeroDetection.isAllZero(bytes) {
                        slot.isZero[index] = true
                        slot.digests[index] = .zeroBlockMarker
                    } else {
                        slot.isZero[index] = false
                        slot.digests[index] = slot.hasher.digest(of: bytes)
                    }
                    let digestStart = index * BlockDigest.byteCount
                    slot.isChanged[index] =
                        index >= referenced
                        || BlockDigest(
                            bytes: UnsafeRawBufferPointer(
                                rebasing: slot.referenceDigests[digestStart..<(digestStart + BlockDigest.byteCount)]))
                            != slot.digests[index]
                    slot.frameLengths[index] = 0
                    if let compressor = worker.compressor, let frames = slot.frames, slot.isChanged[index], !slot.isZero[index] {
                        let room = UnsafeMutableRawBufferPointer(rebasing: frames[start..<(start + bytes.count)])
                        slot.frameLengths[index] = compressor.compress(bytes, into: room) ?? 0
                    }
                }
                slot.layOutOutput(blockSize: blockSize)
            },
            place: OrderedPlacement(
                size: { slot in slot.outputBytes },
                write: { _, slot, offset, _ throws(BlockDeltaError) in
                    slot.outputOffset = offset
                    try placement.write(slot.output, atRecordOffset: offset)
                }),
            consume: { chunk, slot throws(BlockDeltaError) in
                if let control, control.isCancelled { throw .cancelled(path: source.path) }
                let firstBlock = UInt64(chunk) * UInt64(blocksPerChunk)
                var run: (start: Int, isZero: Bool)?
                func flush(upTo end: Int) throws(BlockDeltaError) {
                    guard let current = run else { return }
                    run = nil
                    let block = firstBlock + UInt64(current.start)
                    let count = UInt64(end - current.start)
                    if current.isZero {
                        try writer.appendZero(firstBlock: block, count: count)
                    } else {
                        try writer.recordPlacedData(
                            firstBlock: block, digests: slot.digests[current.start..<end],
                            byteCount: geometry.byteCount(ofBlocks: block, count: count))
                    }
                }
                for index in 0..<slot.blockCount {
                    try mapWriter.append(slot.digests[index])
                    if slot.isZero[index] { zeroBlocksSeen += 1 }
                    if slot.isHole[index] {
                        holeBlocks += 1
                        holeBytes += UInt64(geometry.length(ofBlock: firstBlock + UInt64(index)))
                    }
                    if !slot.isChanged[index] {
                        try flush(upTo: index)
                    } else if let current = run, current.isZero != slot.isZero[index] {
                        try flush(upTo: index)
                        run = (index, slot.isZero[index])
                    } else if run == nil {
                        run = (index, slot.isZero[index])
                    }
                }
                try flush(upTo: slot.blockCount)
                if slot.outputBytes > 0 { try writer.recordStoredBytes(slot.outputBytes, at: slot.outputOffset) }
                if let control {
                    control.progress(geometry.offset(ofBlock: firstBlock) + UInt64(slot.byteCount))
                }
            })
        return (blockCount, zeroBlocksSeen, holeBlocks, holeBytes)
    }
}
