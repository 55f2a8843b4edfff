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
    /// Bytes read from the source.
    public var bytesRead: UInt64
    /// Bytes of block data stored in the data file: the data bytes, or for framed data its frames.
    public var storedBytes: UInt64
}

/// A reusable buffer with the per-block results of one chunk.
///
/// Owned by one thread at a time: a worker fills it, the consumer reads it, and the pipeline's lock orders
/// the hand-offs, which is the invariant behind `@unchecked Sendable`.
final class ScanSlot: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    var digests: [BlockDigest]
    var isZero: [Bool]
    /// Whether each block differs from the reference map (every block when there is none).
    var isChanged: [Bool]
    /// The reference map's digests of the chunk's blocks.
    let referenceDigests: UnsafeMutableRawBufferPointer
    /// Block `i`'s zstd frame at `i × block size`, when compressing.
    let frames: UnsafeMutableRawBufferPointer?
    /// Block `i`'s zstd frame length; 0 when it is stored raw.
    var frameLengths: [Int]
    var blockCount = 0
    let hasher = SHA256Hasher()

    init(bufferSize: Int, blocks: Int, compressing: Bool) {
        buffer = .allocate(byteCount: bufferSize, alignment: BlockSource.directIOAlignment)
        digests = Array(repeating: .zeroBlockMarker, count: blocks)
        isZero = Array(repeating: false, count: blocks)
        isChanged = Array(repeating: true, count: blocks)
        referenceDigests = .allocate(byteCount: blocks * BlockDigest.byteCount, alignment: 16)
        frames = compressing ? .allocate(byteCount: bufferSize, alignment: 16) : nil
        frameLengths = Array(repeating: 0, count: blocks)
    }

    deinit {
        buffer.deallocate()
        referenceDigests.deallocate()
        frames?.deallocate()
    }

    /// The zstd frame of block `index`, or nil when it is stored raw.
    func frame(ofBlock index: Int, blockSize: Int) -> UnsafeRawBufferPointer? {
        guard let frames, frameLengths[index] > 0 else { return nil }
        let start = index * blockSize
        return UnsafeRawBufferPointer(rebasing: frames[start..<(start + frameLengths[index])])
    }
}

/// The delta scan: reads the whole source, finds zero blocks, hashes the others, compares each block with
/// a reference hash map and writes the blocks that differ (all blocks when there is no reference) as one
/// backup, plus the new full hash map.
///
/// Workers read, zero-check, hash, compare and (for ``DataEncoding/zstd(level:)``) compress the changed
/// blocks of their chunks in parallel, each with its own zstd context; one consumer writes the chunks in
/// order.
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
                    "osb-stored-bytes": "\(writer.storedBytes)",
                ])
            return DeltaScanResult(
                summary: summary, blocksScanned: result.blocksScanned, zeroBlocksSeen: result.zeroBlocksSeen,
                bytesRead: geometry.volumeSize, storedBytes: writer.storedBytes)
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
    ) throws(BlockDeltaError) -> (blocksScanned: UInt64, zeroBlocksSeen: UInt64) {
        let blockSize = geometry.blockSize
        let blocksPerChunk = configuration.blocksPerChunk(blockSize: blockSize)
        let chunkBytes = blocksPerChunk * blockSize
        let blockCount = geometry.blockCount
        let chunkCount = Int((blockCount + UInt64(blocksPerChunk) - 1) / UInt64(blocksPerChunk))
        let slots = (0..<configuration.chunksInFlight).map { _ in
            ScanSlot(bufferSize: chunkBytes, blocks: blocksPerChunk, compressing: dataEncoding != .raw)
        }
        let referenceBlocks = reference?.descriptor.geometry.blockCount ?? 0
        var zeroBlocksSeen: UInt64 = 0

        try OrderedPipeline.run(
            chunkCount: chunkCount, workerCount: configuration.workerCount, slots: slots,
            makeWorker: { () -> BlockCompressor? in
                guard case .zstd(let level) = dataEncoding else { return nil }
                return BlockCompressor(level: level)
            },
            work: { chunk, slot, compressor throws(BlockDeltaError) in
                let firstBlock = UInt64(chunk) * UInt64(blocksPerChunk)
                let blocks = Int(min(UInt64(blocksPerChunk), blockCount - firstBlock))
                let length = Int(geometry.byteCount(ofBlocks: firstBlock, count: UInt64(blocks)))
                try source.read(into: slot.buffer, at: geometry.offset(ofBlock: firstBlock), length: length)
                slot.blockCount = blocks
                // Blocks past the end of the reference (a volume that grew) are changed.
                let referenced = firstBlock < referenceBlocks ? Int(min(UInt64(blocks), referenceBlocks - firstBlock)) : 0
                if let reference, referenced > 0 {
                    try reference.file.readRecords(from: firstBlock, count: referenced, into: slot.referenceDigests)
                }
                for index in 0..<blocks {
                    let start = index * blockSize
                    let bytes = UnsafeRawBufferPointer(rebasing: slot.buffer[start..<min(start + blockSize, length)])
                    if ZeroDetection.isAllZero(bytes) {
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
                    if let compressor, let frames = slot.frames, slot.isChanged[index], !slot.isZero[index] {
                        let room = UnsafeMutableRawBufferPointer(rebasing: frames[start..<(start + bytes.count)])
                        slot.frameLengths[index] = compressor.compress(bytes, into: room) ?? 0
                    }
                }
            },
            consume: { chunk, slot throws(BlockDeltaError) in
                if let control, control.isCancelled { throw .cancelled(path: source.path) }
                let firstBlock = UInt64(chunk) * UInt64(blocksPerChunk)
                var run: (start: Int, isZero: Bool)?
                func flush(upTo end: Int) throws(BlockDeltaError) {
                    guard let current = run else { return }
                    run = nil
                    let block = firstBlock + UInt64(current.start)
                    if current.isZero {
                        try writer.appendZero(firstBlock: block, count: UInt64(end - current.start))
                    } else {
                        let startByte = current.start * blockSize
                        let endByte = startByte + Int(geometry.byteCount(ofBlocks: block, count: UInt64(end - current.start)))
                        try writer.appendData(
                            firstBlock: block, digests: slot.digests[current.start..<end],
                            bytes: UnsafeRawBufferPointer(rebasing: slot.buffer[startByte..<endByte]),
                            compressedFrame: { slot.frame(ofBlock: current.start + $0, blockSize: blockSize) })
                    }
                }
                for index in 0..<slot.blockCount {
                    try mapWriter.append(slot.digests[index])
                    if slot.isZero[index] { zeroBlocksSeen += 1 }
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
                if let control {
                    control.progress(geometry.offset(ofBlock: firstBlock) + UInt64(geometry.byteCount(ofBlocks: firstBlock, count: UInt64(slot.blockCount))))
                }
            })
        return (blockCount, zeroBlocksSeen)
    }
}
