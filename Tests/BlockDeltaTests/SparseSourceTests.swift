import BlockDelta
import Foundation
import Testing
import TestSupport

/// Sparse sources: holes found with SEEK_DATA/SEEK_HOLE are zero blocks, read or not. Every test compares
/// a hole-aware scan with a plain one of the same file: the backups must be the same bytes.
@Suite(
    "Hole-aware scans of sparse files",
    .enabled(
        if: SparseFile.holesAreReported(in: FileManager.default.temporaryDirectory.path),
        "the temporary directory's file system does not report holes"))
struct SparseSourceTests {
    /// Scans `file` (created at `directory/source.img`) twice, hole-aware and plain, and checks they agree.
    @discardableResult
    private func scanBothWays(
        _ file: SparseFile, in directory: String, name: String, blockSize: Int, encoding: DataEncoding,
        reference: (aware: String, plain: String)? = nil, backupID: BackupID = .generate(),
        configuration: ParallelIOConfiguration = ParallelIOConfiguration(chunkSize: 64 << 10, workerCount: 2)
    ) throws -> (aware: (files: VolumeBackupFiles, map: String, result: DeltaScanResult), plain: (files: VolumeBackupFiles, map: String, result: DeltaScanResult)) {
        let sourcePath = "\(directory)/source.img"
        try file.create(at: sourcePath)
        let awareSource = try BlockSource(path: sourcePath, logger: testLogger)
        let plainSource = try BlockSource(path: sourcePath, skipsHoles: false, logger: testLogger)
        #expect(awareSource.findsHoles && !plainSource.findsHoles)
        let aware = try scan(
            source: awareSource, in: directory, name: "\(name)-aware", blockSize: blockSize, backupID: backupID,
            reference: try reference.map { try HashMapReader(path: $0.aware) }, encoding: encoding, configuration: configuration)
        let plain = try scan(
            source: plainSource, in: directory, name: "\(name)-plain", blockSize: blockSize, backupID: backupID,
            reference: try reference.map { try HashMapReader(path: $0.plain) }, encoding: encoding, configuration: configuration)
        #expect(try sameFiles(aware, plain), "hole-aware and plain scans of \(name) differ")
        #expect(aware.result.summary == plain.result.summary)
        #expect(aware.result.storedBytes == plain.result.storedBytes)
        #expect(plain.result.holeBytes == 0)
        return (aware, plain)
    }

    /// The bytes of the blocks no write touches: the holes a hole-aware scan must find.
    private func holeBytes(of file: SparseFile, blockSize: Int) -> UInt64 {
        stride(from: 0, to: file.size, by: blockSize).reduce(0) { total, start in
            let range = start..<min(start + blockSize, file.size)
            return file.isWritten(range) ? total : total + UInt64(range.count)
        }
    }

    static let layouts: [(blockSize: Int, encoding: DataEncoding)] = [
        (4096, .raw), (16384, .zstd(level: 3)), (65536, .raw), (65536, .zstd(level: 3)),
    ]

    @Test(
        "holes at aligned and unaligned places, zeros written as data, data in the last bytes, a short last block",
        arguments: layouts)
    func handMadeLayout(blockSize: Int, encoding: DataEncoding) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 41)
            var file = SparseFile(size: 5 * (1 << 20) + 777)
            file.write(Array("boot sector\n".utf8), at: 0)
            file.write(generator.bytes(70_000), at: 3 * 65536 + 5000)  // starts and ends inside blocks
            file.write(generator.bytes(128 << 10), at: 1 << 20)  // block-aligned
            file.write([UInt8](repeating: 0, count: 64 << 10), at: 2 << 20)  // zeros written: data that reads as zero
            file.write(Array(repeating: 0x41, count: 8192), at: (3 << 20) + 4096)  // a block's second half
            file.write(generator.bytes(10), at: file.size - 10)  // the very end
            let (aware, _) = try scanBothWays(file, in: directory, name: "full", blockSize: blockSize, encoding: encoding)
            #expect(aware.result.holeBytes == holeBytes(of: file, blockSize: blockSize))
            #expect(aware.result.holeBytes > UInt64(file.size) / 2)
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [aware.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == file.content)
        }
    }

    @Test("a file of holes only is one zero region, found without reading, and an Incremental of it stores nothing")
    func holesOnly() throws {
        try withTemporaryDirectory { directory in
            let file = SparseFile(size: 256 << 20)
            let full = try scanBothWays(file, in: directory, name: "full", blockSize: 65536, encoding: .zstd(level: 3))
            #expect(full.aware.result.holeBytes == UInt64(file.size))
            #expect(full.aware.result.summary.regionCount == 1)
            #expect(full.aware.result.summary.zeroBlocks == 4096)
            #expect(full.aware.result.storedBytes == 0)
            let incremental = try scanBothWays(
                file, in: directory, name: "incr", blockSize: 65536, encoding: .zstd(level: 3),
                reference: (full.aware.map, full.plain.map))
            #expect(incremental.aware.result.summary.regionCount == 0)
        }
    }

    @Test("hole-aware and plain scans agree on random sparse files, Full and Incremental", arguments: 1...12)
    func randomLayouts(seed: UInt64) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 1000 + seed)
            let blockSize = [4096, 16384, 65536].randomElement(using: &generator)!
            let encoding: DataEncoding = Bool.random(using: &generator) ? .raw : .zstd(level: 1)
            let workers = Int.random(in: 1...3, using: &generator)
            let configuration = ParallelIOConfiguration(
                chunkSize: blockSize * Int.random(in: 1...8, using: &generator), workerCount: workers)
            var file = SparseFile(size: Int.random(in: (1 << 20)...(6 << 20), using: &generator))
            for _ in 0..<Int.random(in: 0...8, using: &generator) {
                file.write(randomExtent(using: &generator), at: Int.random(in: 0..<file.size, using: &generator))
            }
            let full = try scanBothWays(
                file, in: directory, name: "day1", blockSize: blockSize, encoding: encoding, configuration: configuration)
            #expect(full.aware.result.holeBytes == holeBytes(of: file, blockSize: blockSize))

            // Day 2: new writes, some into holes; some data punched out into holes again.
            var day2 = file
            for _ in 0..<Int.random(in: 1...5, using: &generator) {
                day2.write(randomExtent(using: &generator), at: Int.random(in: 0..<day2.size, using: &generator))
            }
            try day2.create(at: "\(directory)/source.img")
            let punched = try OpenFile.openForWriting("\(directory)/source.img", create: false)
            var content = day2.content
            for _ in 0..<Int.random(in: 0...3, using: &generator) {
                let start = Int.random(in: 0..<day2.size, using: &generator)
                let length = min(day2.size - start, Int.random(in: 1...(200 << 10), using: &generator))
                try punched.zeroRange(at: UInt64(start), length: UInt64(length), isBlockDevice: false)
                content.replaceSubrange(start..<(start + length), with: [UInt8](repeating: 0, count: length))
            }
            try punched.close()
            let awareSource = try BlockSource(path: "\(directory)/source.img", logger: testLogger)
            let plainSource = try BlockSource(path: "\(directory)/source.img", skipsHoles: false, logger: testLogger)
            let id = BackupID.generate()
            let aware = try scan(
                source: awareSource, in: directory, name: "day2-aware", blockSize: blockSize, backupID: id,
                reference: HashMapReader(path: full.aware.map), encoding: encoding, configuration: configuration)
            let plain = try scan(
                source: plainSource, in: directory, name: "day2-plain", blockSize: blockSize, backupID: id,
                reference: HashMapReader(path: full.plain.map), encoding: encoding, configuration: configuration)
            #expect(try sameFiles(aware, plain), "seed \(seed): the Incrementals differ")
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [full.aware.files, aware.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == content, "seed \(seed): the restored chain differs")
        }
    }

    /// Up to 300 KiB of random bytes, text or written zeros.
    private func randomExtent(using generator: inout SeededGenerator) -> [UInt8] {
        let length = Int.random(in: 1...(300 << 10), using: &generator)
        switch Int.random(in: 0..<3, using: &generator) {
        case 0: return generator.bytes(length)
        case 1: return (0..<length).map { UInt8(truncatingIfNeeded: 0x20 + $0 % 90) }
        default: return [UInt8](repeating: 0, count: length)
        }
    }
}
