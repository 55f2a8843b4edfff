import BackupEngine
import BlockDelta
import Foundation
import Testing
import TestSupport

@Suite("Image repository and locks")
struct ImageRepositoryTests {
    private func request(_ directory: String, volumeID: String? = nil) -> ImageBackupRequest {
        ImageBackupRequest(
            source: "\(directory)/disk.img", stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
            level: .incremental, blockSize: 4096, volumeID: volumeID)
    }

    private func withImage(_ body: (String) throws -> Void) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 51)
            try DiskImage.write(DiskImage.content(size: 60_000, using: &generator), to: "\(directory)/disk.img")
            try body(directory)
        }
    }

    @Test("a second backup of the same volume is refused while the first holds the lock")
    func volumeLock() throws {
        try withImage { directory in
            _ = try ImageBackupJob.backup(request(directory, volumeID: "vol-1"), logger: testLogger)
            let held = try #require(try FileLock.tryAcquire("\(directory)/state/vol-1.lock"))
            let error = #expect(throws: BlockDeltaError.self) {
                try ImageBackupJob.backup(request(directory, volumeID: "vol-1"), logger: testLogger)
            }
            #expect(error?.description.contains("another backup of volume vol-1 is running") == true)
            held.release()
            _ = try ImageBackupJob.backup(request(directory, volumeID: "vol-1"), logger: testLogger)
        }
    }

    @Test("a dead backup's partial folder is removed, a running one's is kept")
    func partialFolders() throws {
        try withImage { directory in
            let repository = try BackupRepository(directory: "\(directory)/repo", create: true)
            let dead = "\(directory)/repo/\(BackupID.generate()).partial"
            try FileManager.default.createDirectory(atPath: dead, withIntermediateDirectories: false)
            let running = try repository.beginJob(BackupID.generate())
            _ = try ImageBackupJob.backup(request(directory), logger: testLogger)
            #expect(!FileManager.default.fileExists(atPath: dead))
            #expect(FileManager.default.fileExists(atPath: running.folder))
            #expect(try repository.volumeBackups().count == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/repo/\(repository.latestJob().jobID)")
                .allSatisfy { !$0.hasPrefix(".") })
        }
    }

    @Test("volume ids that could escape the state directory are refused", arguments: ["../x", ".hidden", "a/b", "", String(repeating: "v", count: 60)])
    func unsafeVolumeIDs(id: String) throws {
        try withImage { directory in
            let error = #expect(throws: BlockDeltaError.self) {
                try ImageBackupJob.backup(request(directory, volumeID: id), logger: testLogger)
            }
            #expect(error?.isConfigurationError == true)
        }
    }

    @Test("names are made path-safe and capped", arguments: [
        ("disk.img", "disk.img"), ("a/b", "a_b"), ("..", "_."), ("", "unnamed"), ("x\u{0}y\n", "x_y_"),
    ])
    func pathSafeNames(name: String, expected: String) {
        #expect(PathSafeName.make(name) == expected)
        #expect(PathSafeName.make(String(repeating: "é", count: 80)).utf8.count <= PathSafeName.maximumLength)
    }
}

@Suite("Tampered manifests")
struct TamperedManifestTests {
    @Test("a manifest that names a file outside its folder is refused")
    func escapingFileName() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 52)
            try DiskImage.write(DiskImage.content(size: 30_000, using: &generator), to: "\(directory)/disk.img")
            let outcome = try ImageBackupJob.backup(
                ImageBackupRequest(
                    source: "\(directory)/disk.img", stateDirectory: "\(directory)/state",
                    repositoryDirectory: "\(directory)/repo", level: .full, blockSize: 4096),
                logger: testLogger)
            let path = "\(directory)/repo/\(outcome.record.backupID)/manifest.json"
            let text = try String(contentsOfFile: path, encoding: .utf8)
                .replacingOccurrences(of: outcome.record.regionsFile, with: "../../state/x.bmp")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let error = #expect(throws: BlockDeltaError.self) {
                try ImageBackupJob.restore(
                    repositoryDirectory: "\(directory)/repo", backup: nil, to: "\(directory)/out.img", logger: testLogger)
            }
            #expect(error?.description.contains("names a file outside its backup folder") == true)
        }
    }
}
