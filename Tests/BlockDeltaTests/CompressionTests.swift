import BlockDelta
import Foundation
import Testing
import TestSupport

/// Block data written zstd-compressed per block (framed, format version 2) restores byte-exact, falls back
/// to raw blocks where compression does not shrink them, and is refused cleanly when damaged.
@Suite("Compressed block data")
struct CompressionTests {
    static let blockSize = 4096

    @Test("scan then restore is byte-exact at every level", arguments: ContentKind.allCases, [-1, 1, 3])
    func roundTrip(kind: ContentKind, level: Int) throws {
        try withTemporaryDirectory { directory in
            // Three chunks of 16 blocks with two workers, and a short last block.
            let content = kind.content(size: 47 * Self.blockSize + 300, seed: 31)
            let full = try scan(content, in: directory, name: "full", blockSize: Self.blockSize, encoding: .zstd(level: level))
            #expect(try VolumeBackupReader(files: full.files).data.header.layout == .framed)
            let restored = "\(directory)/restored.img"
            let result = try ChainRestorer.restore(
                chain: [full.files], to: restored,
                configuration: ParallelIOConfiguration(chunkSize: 16 * Self.blockSize, workerCount: 2), logger: testLogger)
            #expect(try DiskImage.read(restored) == content)
            #expect(result.dataBytes == full.result.summary.dataBytes)
            #expect(result.storedBytes == full.result.storedBytes)
        }
    }

    @Test("random blocks are stored raw, compressible blocks as zstd frames")
    func rawFallback() throws {
        try withTemporaryDirectory { directory in
            let random = try scan(
                ContentKind.incompressible.content(size: 20 * Self.blockSize, seed: 32), in: directory, name: "random",
                blockSize: Self.blockSize, encoding: .zstd(level: 3))
            let summary = random.result.summary
            #expect(summary.dataBlocks == 20)
            #expect(random.result.storedBytes == summary.dataBytes + 20 * UInt64(BlockFrameWord.size))
            #expect(try frameWords(of: random.files.data).allSatisfy { !$0.isCompressed && $0.storedLength == Self.blockSize })

            let text = try scan(
                ContentKind.compressible.content(size: 20 * Self.blockSize, seed: 33), in: directory, name: "text",
                blockSize: Self.blockSize, encoding: .zstd(level: 3))
            #expect(text.result.storedBytes < text.result.summary.dataBytes / 3)
            let words = try frameWords(of: text.files.data)
            #expect(words.count == 20 && words.allSatisfy { $0.isCompressed })
            #expect(try VolumeBackupReader(files: text.files).storedBytes == text.result.storedBytes)
        }
    }

    @Test("mixed blocks: each frame is zstd exactly where that is shorter, and the file size adds up")
    func mixedFrames() throws {
        try withTemporaryDirectory { directory in
            let content = ContentKind.mixed.content(size: 64 * Self.blockSize, seed: 34)
            let backup = try scan(content, in: directory, name: "mixed", blockSize: Self.blockSize, encoding: .zstd(level: 1))
            let words = try frameWords(of: backup.files.data)
            #expect(words.count == Int(backup.result.summary.dataBlocks))
            #expect(words.contains { $0.isCompressed } && words.contains { !$0.isCompressed })
            #expect(words.allSatisfy { $0.isCompressed ? $0.storedLength < Self.blockSize : $0.storedLength == Self.blockSize })
            let stored = words.reduce(0) { $0 + UInt64(BlockFrameWord.size + $1.storedLength) }
            #expect(stored == backup.result.storedBytes)
            let fileSize = try DiskImage.read(backup.files.data).count
            #expect(fileSize == FormatHeader.size + Int(stored) + FormatHeader.trailerSize)
        }
    }

    @Test("a chain mixes encodings: a raw Full, a compressed Incremental, a raw Incremental")
    func mixedChain() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 35)
            let day1 = DiskImage.content(size: 120 * Self.blockSize + 5, using: &generator)
            let full = try scan(day1, in: directory, name: "d1", blockSize: Self.blockSize)
            var day2 = day1
            DiskImage.mutate(&day2, blockSize: Self.blockSize, changes: 20, using: &generator)
            let second = try scan(
                day2, in: directory, name: "d2", blockSize: Self.blockSize, reference: HashMapReader(path: full.map),
                encoding: .zstd(level: 1))
            var day3 = day2
            DiskImage.mutate(&day3, blockSize: Self.blockSize, changes: 20, growBy: 3 * Self.blockSize, using: &generator)
            let third = try scan(
                day3, in: directory, name: "d3", blockSize: Self.blockSize, reference: HashMapReader(path: second.map))
            // The Incremental holds only the changed blocks, compressed or not.
            #expect(try listedBlocks(second.files).data.count == Int(second.result.summary.dataBlocks))
            #expect(try frameWords(of: second.files.data).count == Int(second.result.summary.dataBlocks))
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [full.files, second.files, third.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == day3)
            #expect(try ChainRestorer.verify(chain: [full.files, second.files]).backups == 2)
        }
    }
}

@Suite("Data encoding names")
struct DataEncodingTests {
    @Test("none, zstd and zstd:LEVEL parse and print back", arguments: [
        ("none", DataEncoding.raw), ("raw", .raw), ("zstd", .directoryDefault), ("zstd:-1", .zstd(level: -1)),
        ("ZSTD:3", .zstd(level: 3)),
    ])
    func parses(text: String, expected: DataEncoding) throws {
        let encoding = try DataEncoding(parsing: text)
        #expect(encoding == expected)
        #expect(try DataEncoding(parsing: encoding.description) == encoding)
    }

    @Test("unknown names and levels out of range are usage errors", arguments: ["lz4", "zstd:", "zstd:x", "zstd:99", "zstd3"])
    func refuses(text: String) {
        let error = #expect(throws: BlockDeltaError.self) { try DataEncoding(parsing: text) }
        #expect(error?.isConfigurationError == true)
        #expect(error?.description.contains(text) == true)
    }
}
