import BackupEngine
import BlockDelta
import Foundation
import Testing
import TestSupport

@Suite("Repository verify and prune")
struct RepositoryMaintenanceTests {
    /// Backs up the image at `level` after changing one block (so every job stores something); returns the job id.
    private func backUp(_ directory: String, _ level: BackupLevel, change: UInt8) throws -> String {
        let handle = try #require(FileHandle(forWritingAtPath: "\(directory)/disk.img"))
        try handle.seek(toOffset: UInt64(change) * 4096)
        try handle.write(contentsOf: Data(repeating: change, count: 4096))
        try handle.close()
        let outcome = try ImageBackupJob.backup(
            ImageBackupRequest(
                source: "\(directory)/disk.img", stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
                level: level, blockSize: 4096, volumeID: "vol-1"),
            logger: testLogger)
        return outcome.record.backupID  // an image job's id is its volume backup's id
    }

    private func withImage(_ body: (String) throws -> Void) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 77)
            try DiskImage.write(DiskImage.content(size: 80_000, using: &generator), to: "\(directory)/disk.img")
            try body(directory)
        }
    }

    @Test("prune keeps the newest jobs and every job their chains build on, and removes the rest whole")
    func pruneKeepsChains() throws {
        try withImage { directory in
            let full1 = try backUp(directory, .full, change: 1)
            let inc1 = try backUp(directory, .incremental, change: 2)
            let inc2 = try backUp(directory, .incremental, change: 3)
            let full2 = try backUp(directory, .full, change: 4)
            let diff1 = try backUp(directory, .differential, change: 5)
            let diff2 = try backUp(directory, .differential, change: 6)
            let repository = try BackupRepository(directory: "\(directory)/repo", create: false)

            // Keeping the last 4 (inc2 … diff2): inc2 needs inc1 and full1, so nothing goes.
            let wide = try RepositoryMaintenance.prune(repository, keepLast: 4, dryRun: true)
            #expect(wide.removed.isEmpty)
            #expect(Set(wide.keptForChains) == [full1, inc1])

            let dry = try RepositoryMaintenance.prune(repository, keepLast: 1, dryRun: true)
            #expect(Set(dry.removed) == [full1, inc1, inc2, diff1], "a Differential builds on its Full only")
            #expect(try repository.jobs().count == 6, "a dry run removes nothing")

            let report = try RepositoryMaintenance.prune(repository, keepLast: 1)
            #expect(report.kept == [diff2])
            #expect(report.keptForChains == [full2])
            #expect(try repository.jobs().map(\.jobID) == [full2, diff2])
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/repo").filter { $0.hasSuffix(".pruning") }.isEmpty)
            // What is kept still restores and verifies.
            #expect(try RepositoryMaintenance.verify(repository, jobID: nil).allSatisfy(\.isIntact))
            _ = try ImageBackupJob.restore(
                repositoryDirectory: "\(directory)/repo", backup: nil, to: "\(directory)/out.img", logger: testLogger)
            #expect(FileManager.default.contents(atPath: "\(directory)/out.img") == FileManager.default.contents(atPath: "\(directory)/disk.img"))

            #expect(throws: BlockDeltaError.self) { try RepositoryMaintenance.prune(repository, keepLast: 0) }
        }
    }

    @Test("verify reads the whole chain: a damaged block in an older job is reported for the newest, naming the file")
    func verifyFindsDamage() throws {
        try withImage { directory in
            let full = try backUp(directory, .full, change: 1)
            let incremental = try backUp(directory, .incremental, change: 2)
            let repository = try BackupRepository(directory: "\(directory)/repo", create: false)
            let intact = try RepositoryMaintenance.verify(repository, jobID: nil)
            #expect(intact.count == 1 && intact[0].isIntact && intact[0].chainLength == 2)
            #expect(intact[0].backupID == incremental)

            let fullID = try #require(BackupID(full))
            let record = try #require(try repository.manifest(ofJob: fullID).volumes.first)
            let data = repository.files(of: record, jobID: full).data
            let handle = try #require(FileHandle(forUpdatingAtPath: data))
            try handle.seek(toOffset: try handle.seekToEnd() - 5000)
            try handle.write(contentsOf: Data([0xFF, 0x00, 0xFF]))
            try handle.close()
            let damaged = try RepositoryMaintenance.verify(repository, jobID: BackupID(incremental))
            #expect(damaged.count == 1 && !damaged[0].isIntact)
            #expect(damaged[0].error?.contains(data) == true, "\(damaged[0].error ?? "")")
        }
    }
}
