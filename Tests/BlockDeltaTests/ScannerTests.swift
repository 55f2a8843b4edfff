import BlockDelta
import Foundation
import Testing
import TestSupport

@Suite("Delta scan and chain restore")
struct ScannerTests {
    @Test("a Full covers every block, data and zero, and restores byte-exact", arguments: [4096, 16384])
    func fullBackup(blockSize: Int) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 11)
            let content = DiskImage.content(size: 300_001, using: &generator)
            let (files, map, result) = try scan(content, in: directory, name: "full", blockSize: blockSize)
            let blocks = UInt64((content.count + blockSize - 1) / blockSize)
            #expect(result.summary.dataBlocks + result.summary.zeroBlocks == blocks)
            let listed = try listedBlocks(files)
            #expect(listed.data.union(listed.zero) == Set(0..<blocks))
            #expect(try HashMapReader(path: map).file.recordCount == blocks)
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == content)
        }
    }

    @Test("an Incremental holds exactly the changed blocks, including blocks that became zero")
    func incrementalHoldsChangedBlocks() throws {
        try withTemporaryDirectory { directory in
            let blockSize = 4096
            var generator = SeededGenerator(seed: 12)
            let day1 = DiskImage.content(size: 200 * blockSize + 123, using: &generator)
            let full = try scan(day1, in: directory, name: "day1", blockSize: blockSize)
            var day2 = day1
            DiskImage.mutate(&day2, blockSize: blockSize, changes: 25, using: &generator)
            let zeroedBlock = 7 * blockSize
            for index in zeroedBlock..<(zeroedBlock + blockSize) { day2[index] = 0 }
            let incremental = try scan(
                day2, in: directory, name: "day2", blockSize: blockSize, reference: try HashMapReader(path: full.map))
            let listed = try listedBlocks(incremental.files)
            let expected = changedBlocks(from: day1, to: day2, blockSize: blockSize)
            #expect(listed.data.union(listed.zero) == expected)
            if day1[zeroedBlock..<(zeroedBlock + blockSize)].contains(where: { $0 != 0 }) {
                #expect(listed.zero.contains(7))
            }
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [full.files, incremental.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == day2)
        }
    }

    @Test("a volume that grew sends its new blocks and restores at the new size")
    func grownVolume() throws {
        try withTemporaryDirectory { directory in
            let blockSize = 4096
            var generator = SeededGenerator(seed: 13)
            let day1 = DiskImage.content(size: 50 * blockSize + 7, using: &generator)
            let full = try scan(day1, in: directory, name: "day1", blockSize: blockSize)
            var day2 = day1
            DiskImage.mutate(&day2, blockSize: blockSize, changes: 0, growBy: 20 * blockSize, using: &generator)
            let incremental = try scan(
                day2, in: directory, name: "day2", blockSize: blockSize, reference: try HashMapReader(path: full.map))
            let listed = try listedBlocks(incremental.files)
            // Block 50 was the short last block and is now full; 51... are new.
            #expect(listed.data.union(listed.zero) == changedBlocks(from: day1, to: day2, blockSize: blockSize))
            #expect(listed.data.union(listed.zero).contains(70))
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [full.files, incremental.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == day2)
        }
    }

    @Test("one worker and many give the same backup", arguments: [1, 2, 3])
    func workerCountsAgree(workers: Int) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 14)
            let content = DiskImage.content(size: 1 << 20, using: &generator)
            let id = BackupID("01890000-0000-7000-8000-0000000000aa")!
            let one = try scan(
                content, in: directory, name: "one", blockSize: 4096, backupID: id,
                configuration: ParallelIOConfiguration(chunkSize: 16384, workerCount: 1))
            let many = try scan(
                content, in: directory, name: "many", blockSize: 4096, backupID: id,
                configuration: ParallelIOConfiguration(chunkSize: 16384, workerCount: workers, chunksInFlight: workers + 1))
            for (left, right) in zip(one.files.all + [one.map], many.files.all + [many.map]) {
                #expect(try DiskImage.read(left) == DiskImage.read(right))
            }
        }
    }

    @Test("a restore is sparse: zero regions become holes")
    func sparseRestore() throws {
        try withTemporaryDirectory { directory in
            var content = [UInt8](repeating: 0, count: 64 << 20)
            content[0] = 1
            content[content.count - 1] = 2
            let full = try scan(content, in: directory, name: "full", blockSize: 65536)
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [full.files], to: restored, logger: testLogger)
            var info = stat()
            #expect(stat(restored, &info) == 0)
            #expect(Int(info.st_blocks) * 512 < 1 << 20)
            #expect(try DiskImage.read(restored) == content)
        }
    }

    @Test("a chain that skips a backup is refused")
    func brokenChain() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 15)
            var content = DiskImage.content(size: 100_000, using: &generator)
            let full = try scan(content, in: directory, name: "a", blockSize: 4096)
            DiskImage.mutate(&content, blockSize: 4096, changes: 3, using: &generator)
            let second = try scan(content, in: directory, name: "b", blockSize: 4096, reference: HashMapReader(path: full.map))
            DiskImage.mutate(&content, blockSize: 4096, changes: 3, using: &generator)
            let third = try scan(content, in: directory, name: "c", blockSize: 4096, reference: HashMapReader(path: second.map))
            let error = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.restore(chain: [full.files, third.files], to: "\(directory)/out", logger: testLogger)
            }
            #expect(error?.description.contains("builds on") == true)
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/out"))
        }
    }
}
