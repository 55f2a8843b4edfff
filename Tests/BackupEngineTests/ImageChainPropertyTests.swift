import BackupEngine
import BlockDelta
import Foundation
import Logging
import Testing
import TestSupport

let testLogger = Logger(label: "osbackup.tests")

/// Random images, random changes (including blocks that become zero and volumes that grow), chains of ten
/// backups at several block sizes: every backup of every chain restores byte-exact.
@Suite("Image chains (property tests)")
struct ImageChainPropertyTests {
    @Test("every point of a 10-backup chain restores byte-exact", arguments: [
        (seed: UInt64(1), blockSize: 4096),
        (seed: 2, blockSize: 8192),
        (seed: 3, blockSize: 65536),
        (seed: 4, blockSize: 4096),
    ])
    func chainsRestoreExactly(seed: UInt64, blockSize: Int) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: seed)
            let source = "\(directory)/disk.img"
            var content = DiskImage.content(size: Int.random(in: 100_000...900_000, using: &generator), using: &generator)
            var snapshots: [(id: String, content: [UInt8], level: String)] = []
            for day in 0..<10 {
                if day > 0 {
                    DiskImage.mutate(
                        &content, blockSize: blockSize, changes: Int.random(in: 0...20, using: &generator),
                        growBy: Int.random(in: 0..<4, using: &generator) == 0 ? Int.random(in: 1...50_000, using: &generator) : 0,
                        using: &generator)
                }
                try DiskImage.write(content, to: source)
                // Mostly Incrementals, with a Differential now and then and a new Full at day 6.
                let level: BackupLevel = day == 0 || day == 6 ? .full : (day % 4 == 3 ? .differential : .incremental)
                let outcome = try ImageBackupJob.backup(
                    ImageBackupRequest(
                        source: source, stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
                        level: level, blockSize: blockSize,
                        parallelism: ParallelIOConfiguration(chunkSize: 4 * blockSize, workerCount: 2)),
                    logger: testLogger)
                #expect(outcome.record.level == "\(level)", "day \(day): \(outcome.record.fallbackReason ?? "")")
                snapshots.append((outcome.record.backupID, content, outcome.record.level))
            }
            for (index, snapshot) in snapshots.enumerated() {
                let target = "\(directory)/restore-\(index).img"
                let (chain, _) = try ImageBackupJob.restore(
                    repositoryDirectory: "\(directory)/repo", backup: BackupID(snapshot.id), to: target, logger: testLogger)
                #expect(try DiskImage.read(target) == snapshot.content, "seed \(seed) day \(index) (\(snapshot.level))")
                #expect(chain.first?.level == "full")
                try FileManager.default.removeItem(atPath: target)
            }
            let (chain, result) = try ImageBackupJob.verify(repositoryDirectory: "\(directory)/repo", backup: nil)
            #expect(chain.last?.backupID == snapshots.last?.id)
            #expect(result.volumeSize == UInt64(content.count))
        }
    }

    @Test("a Differential holds every block changed since the Full, an Incremental only since the last backup")
    func differentialAgainstFull() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 9)
            let source = "\(directory)/disk.img"
            var content = generator.bytes(64 * 4096)
            func backup(_ level: BackupLevel) throws -> VolumeBackupRecord {
                try DiskImage.write(content, to: source)
                return try ImageBackupJob.backup(
                    ImageBackupRequest(
                        source: source, stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
                        level: level, blockSize: 4096),
                    logger: testLogger
                ).record
            }
            let full = try backup(.full)
            content[0] ^= 1
            let first = try backup(.incremental)
            content[10 * 4096] ^= 1
            let second = try backup(.incremental)
            let differential = try backup(.differential)
            #expect(first.dataBlocks == 1 && second.dataBlocks == 1)
            #expect(differential.dataBlocks == 2)
            #expect(differential.parentID == full.backupID)
            #expect(second.parentID == first.backupID)
            let afterDifferential = try backup(.incremental)
            #expect(afterDifferential.parentID == differential.backupID)
            #expect(afterDifferential.dataBlocks == 0)
        }
    }
}
