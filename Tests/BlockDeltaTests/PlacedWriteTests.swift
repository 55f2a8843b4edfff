import BlockDelta
import CZstd
import Foundation
import Synchronization
import Testing
import TestSupport

/// The scan's data file is written by its workers at offsets placed in chunk order: the result must be the
/// bytes one ordered writer produces.
@Suite("Placed parallel writes")
struct PlacedWriteTests {
    /// One chunk's output in the pipeline test: its size and where it was placed.
    final class Chunk: @unchecked Sendable {
        // Touched by one thread at a time, handed over under the pipeline's lock.
        var index = -1
        var size: UInt64 = 0
        var offset: UInt64 = 0
    }

    /// Output written by the workers, guarded by a mutex.
    final class Output: Sendable {
        let bytes: Mutex<[UInt8]>
        init(size: Int) { bytes = Mutex([UInt8](repeating: 0, count: size)) }
    }

    /// A chunk's output size: random, 0 included, from the chunk's index.
    static func size(ofChunk chunk: Int, seed: UInt64) -> Int {
        var generator = SeededGenerator(seed: seed &* 7919 &+ UInt64(chunk))
        return Bool.random(using: &generator) ? 0 : Int.random(in: 1...300, using: &generator)
    }

    @Test(
        "outputs are placed back to back in chunk order and consumed written, whatever order workers finish in",
        arguments: [(1, 1), (2, 3), (3, 4), (4, 9)])
    func placementOrder(workers: Int, slotCount: Int) throws {
        let chunkCount = 200
        let seed = UInt64(workers * 100 + slotCount)
        let sizes = (0..<chunkCount).map { Self.size(ofChunk: $0, seed: seed) }
        let output = Output(size: sizes.reduce(0, +))
        let slots = (0..<slotCount).map { _ in Chunk() }
        var consumed: [Int] = []
        var expectedOffset: UInt64 = 0
        try OrderedPipeline.run(
            chunkCount: chunkCount, workerCount: workers, slots: slots, makeWorker: { () },
            work: { chunk, slot, _ in
                slot.index = chunk
                slot.size = UInt64(Self.size(ofChunk: chunk, seed: seed))
                usleep(UInt32(chunk * 37 % 5) * 100)  // workers finish out of order
            },
            place: OrderedPlacement(
                size: { $0.size },
                write: { chunk, slot, offset, _ in
                    #expect(slot.size > 0, "a chunk with nothing to write is not written")
                    slot.offset = offset
                    output.bytes.withLock { bytes in
                        for index in 0..<Int(slot.size) { bytes[Int(offset) + index] = UInt8(truncatingIfNeeded: chunk) }
                    }
                }),
            consume: { chunk, slot in
                consumed.append(chunk)
                #expect(slot.index == chunk)
                // Written before it is consumed, where the chunks before it end.
                if slot.size > 0 {
                    #expect(slot.offset == expectedOffset)
                    #expect(output.bytes.withLock { $0[Int(slot.offset) + Int(slot.size) - 1] } == UInt8(truncatingIfNeeded: chunk))
                }
                expectedOffset += slot.size
            })
        #expect(consumed == Array(0..<chunkCount))
        let expected = (0..<chunkCount).flatMap { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: sizes[$0]) }
        #expect(output.bytes.withLock { $0 } == expected)
    }

    @Test("a write that fails stops the pipeline and its error is thrown")
    func failingWrite() {
        let slots = (0..<4).map { _ in Chunk() }
        let error = #expect(throws: BlockDeltaError.self) {
            try OrderedPipeline.run(
                chunkCount: 100, workerCount: 2, slots: slots, makeWorker: { () },
                work: { _, slot, _ in slot.size = 10 },
                place: OrderedPlacement(
                    size: { $0.size },
                    write: { chunk, _, _, _ throws(BlockDeltaError) in
                        if chunk == 37 { throw .failed(path: "/test/data", "write refused") }
                    }),
                consume: { chunk, _ in #expect(chunk < 37) })
        }
        #expect(error?.description.contains("write refused") == true)
    }

    /// What one ordered writer stores for `content`: each block appended in order, compressed with zstd at
    /// `level` where that is shorter (the simple one-shot API, not the scan's contexts), or raw.
    private func orderedBackup(
        of content: [UInt8], blockSize: Int, encoding: DataEncoding, backupID: BackupID, in directory: String
    ) throws -> VolumeBackupFiles {
        let descriptor = try BackupDescriptor(
            geometry: VolumeGeometry(blockSize: blockSize, volumeSize: UInt64(content.count)), backupID: backupID,
            parentID: nil, fullID: backupID, level: .full, volumeID: "test-volume")
        let files = VolumeBackupFiles(
            regions: "\(directory)/ordered.bmp", digests: "\(directory)/ordered.bmpsha", data: "\(directory)/ordered.bvmdk")
        let writer = try VolumeBackupWriter(files: files, descriptor: descriptor, dataLayout: encoding.layout)
        let hasher = SHA256Hasher()
        var frame = [UInt8](repeating: 0, count: blockSize)
        try content.withUnsafeBytes { all in
            for start in stride(from: 0, to: content.count, by: blockSize) {
                let block = UnsafeRawBufferPointer(rebasing: all[start..<min(start + blockSize, content.count)])
                let index = UInt64(start / blockSize)
                if block.allSatisfy({ $0 == 0 }) {
                    try writer.appendZero(firstBlock: index, count: 1)
                    continue
                }
                var frameLength = 0
                if case .zstd(let level) = encoding {
                    let result = frame.withUnsafeMutableBytes {
                        ZSTD_compress($0.baseAddress, block.count - 1, block.baseAddress, block.count, Int32(level))
                    }
                    frameLength = ZSTD_isError(result) == 0 ? result : 0
                }
                try frame.withUnsafeBytes { frameBytes in
                    try writer.appendData(
                        firstBlock: index, digests: [hasher.digest(of: block)], bytes: block,
                        compressedFrame: { _ in frameLength > 0 ? UnsafeRawBufferPointer(rebasing: frameBytes[0..<frameLength]) : nil })
                }
            }
        }
        _ = try writer.finish()
        return files
    }

    @Test(
        "the workers' placed writes store the bytes of one ordered writer and restore byte-exact",
        arguments: [DataEncoding.raw, .zstd(level: 3)], [1, 3])
    func placedEqualsOrdered(encoding: DataEncoding, workers: Int) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 51)
            let content = DiskImage.content(size: (3 << 20) + 1234, maximumRun: 20_000, using: &generator)
            let id = BackupID.generate()
            let placed = try scan(
                content, in: directory, name: "placed", blockSize: 4096, backupID: id, encoding: encoding,
                configuration: ParallelIOConfiguration(chunkSize: 16384, workerCount: workers, chunksInFlight: workers + 2))
            let ordered = try orderedBackup(of: content, blockSize: 4096, encoding: encoding, backupID: id, in: directory)
            for (left, right) in zip(placed.files.all, ordered.all) {
                #expect(try DiskImage.read(left) == DiskImage.read(right), "\(left) differs from \(right)")
            }
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [placed.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == content)
        }
    }
}
