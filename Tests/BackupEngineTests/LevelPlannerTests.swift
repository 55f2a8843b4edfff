import BackupEngine
import BlockDelta
import Foundation
import Testing
import TestSupport

/// When an Incremental must become a Full, and says why.
@Suite("Level planning")
struct LevelPlannerTests {
    struct Setup {
        let directory: String
        var source: String { "\(directory)/disk.img" }
        var state: String { "\(directory)/state" }
        var repo: String { "\(directory)/repo" }

        func backup(_ level: BackupLevel, blockSize: Int? = nil) throws -> VolumeBackupRecord {
            try ImageBackupJob.backup(
                ImageBackupRequest(
                    source: source, stateDirectory: state, repositoryDirectory: repo, level: level, blockSize: blockSize),
                logger: testLogger
            ).record
        }

        var volumeID: String { ImageBackupJob.derivedVolumeID(for: source) }
    }

    private func withSetup(_ body: (Setup) throws -> Void) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 5)
            try DiskImage.write(DiskImage.content(size: 300_000, using: &generator), to: "\(directory)/disk.img")
            try body(Setup(directory: directory))
        }
    }

    @Test("the first backup is a Full, and the map is missing is the reason")
    func firstBackupIsFull() throws {
        try withSetup { setup in
            let manifest = try setup.backup(.incremental)
            #expect(manifest.level == "full")
            #expect(manifest.fallbackReason?.contains("no hash map from an earlier backup") == true)
            #expect(manifest.blockSize == VolumeGeometry.defaultBlockSize)
        }
    }

    @Test("a corrupt map makes the next backup a Full that says so")
    func corruptMap() throws {
        try withSetup { setup in
            _ = try setup.backup(.full, blockSize: 4096)
            try corruptByte(of: "\(setup.state)/\(setup.volumeID).map", at: 200)
            let manifest = try setup.backup(.incremental)
            #expect(manifest.level == "full")
            #expect(manifest.fallbackReason?.contains("checksum does not match") == true)
            #expect(manifest.blockSize == 4096 || manifest.blockSize == VolumeGeometry.defaultBlockSize)
        }
    }

    @Test("a new block size forces a Full; no block size keeps the map's")
    func blockSizeChange() throws {
        try withSetup { setup in
            _ = try setup.backup(.full, blockSize: 4096)
            #expect(try setup.backup(.incremental).level == "incremental")
            #expect(try setup.backup(.incremental).blockSize == 4096)
            let changed = try setup.backup(.incremental, blockSize: 8192)
            #expect(changed.level == "full")
            #expect(changed.fallbackReason == "block size changes from 4096 to 8192 bytes")
        }
    }

    @Test("a shrunk volume forces a Full; a grown one stays incremental")
    func resize() throws {
        try withSetup { setup in
            _ = try setup.backup(.full, blockSize: 4096)
            try truncateFile(setup.source, to: 400_000)
            let grown = try setup.backup(.incremental)
            #expect(grown.level == "incremental")
            #expect(grown.volumeSize == 400_000)
            try truncateFile(setup.source, to: 200_000)
            let shrunk = try setup.backup(.incremental)
            #expect(shrunk.level == "full")
            #expect(shrunk.fallbackReason == "volume shrank from 400000 to 200000 bytes")
        }
    }

    @Test("an Incremental never builds on a backup that is gone from the repository")
    func missingParent() throws {
        try withSetup { setup in
            let full = try setup.backup(.full, blockSize: 4096)
            try FileManager.default.removeItem(atPath: "\(setup.repo)/\(full.backupID)")
            let next = try setup.backup(.incremental)
            #expect(next.level == "full")
            #expect(next.fallbackReason == "parent backup \(full.backupID) is no longer stored")
        }
    }

    @Test("a failed backup leaves the map and the repository as they were")
    func failedBackupKeepsState() throws {
        try withSetup { setup in
            _ = try setup.backup(.full, blockSize: 4096)
            let mapPath = "\(setup.state)/\(setup.volumeID).map"
            let mapBefore = try DiskImage.read(mapPath)
            let backupsBefore = try BackupRepository(directory: setup.repo, create: false).volumeBackups()
            // A source that cannot be read (a directory) fails the backup.
            try FileManager.default.removeItem(atPath: setup.source)
            try FileManager.default.createDirectory(atPath: setup.source, withIntermediateDirectories: false)
            #expect(throws: BlockDeltaError.self) { try setup.backup(.incremental) }
            #expect(try DiskImage.read(mapPath) == mapBefore)
            #expect(try BackupRepository(directory: setup.repo, create: false).volumeBackups() == backupsBefore)
            #expect(!FileManager.default.fileExists(atPath: "\(setup.state)/\(setup.volumeID).map.new"))
        }
    }
}
