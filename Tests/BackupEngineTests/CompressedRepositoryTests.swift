import BackupEngine
import BlockDelta
import Foundation
import Testing
import TestSupport

/// A directory repository stores block data zstd-compressed per block unless asked otherwise, records
/// both sizes in the manifest, and still reads repositories written before compression.
@Suite("Compressed directory repository")
struct CompressedRepositoryTests {
    private func request(_ directory: String, level: BackupLevel, encoding: DataEncoding? = nil) -> ImageBackupRequest {
        var request = ImageBackupRequest(
            source: "\(directory)/disk.img", stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
            level: level, blockSize: 4096, volumeID: "vol-z")
        if let encoding { request.dataEncoding = encoding }
        return request
    }

    private func dataLayout(_ directory: String, _ record: VolumeBackupRecord) throws -> BlockDataLayout {
        let files = try BackupRepository(directory: "\(directory)/repo", create: false)
            .files(of: record, jobID: record.backupID)
        return try VolumeBackupReader(files: files).data.header.layout
    }

    @Test("the default stores compressed frames, --compression none raw data; the chain restores byte-exact")
    func defaultCompressesAndRawOnRequest() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 61)
            var content = DiskImage.content(size: 400_000, using: &generator)
            try DiskImage.write(content, to: "\(directory)/disk.img")
            let full = try ImageBackupJob.backup(request(directory, level: .full), logger: testLogger).record
            #expect(try dataLayout(directory, full) == .framed)
            let stored = try #require(full.storedBytes)
            #expect(stored < full.dataBytes)

            DiskImage.mutate(&content, blockSize: 4096, changes: 10, using: &generator)
            try DiskImage.write(content, to: "\(directory)/disk.img")
            let incremental = try ImageBackupJob.backup(
                request(directory, level: .incremental, encoding: .raw), logger: testLogger
            ).record
            #expect(incremental.level == "incremental")
            #expect(try dataLayout(directory, incremental) == .contiguous)
            #expect(incremental.storedBytes == incremental.dataBytes)

            let listed = try BackupRepository(directory: "\(directory)/repo", create: false).volumeBackups().map(\.record)
            #expect(listed.map(\.storedBytes) == [full.storedBytes, incremental.storedBytes])
            let (_, result) = try ImageBackupJob.restore(
                repositoryDirectory: "\(directory)/repo", backup: nil, to: "\(directory)/out.img", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/out.img") == content)
            // The restore reads only the newest version of each block; verify reads every stored byte.
            #expect(result.storedBytes < stored + incremental.dataBytes)
            #expect(result.supersededBlocks > 0)
            let verified = try ImageBackupJob.verify(repositoryDirectory: "\(directory)/repo", backup: nil).result
            #expect(verified.storedBytes == stored + incremental.dataBytes)
        }
    }

    @Test("a raw repository whose manifest predates compression (no storedBytes) still lists and restores")
    func manifestWithoutStoredBytes() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 62)
            let content = DiskImage.content(size: 100_000, using: &generator)
            try DiskImage.write(content, to: "\(directory)/disk.img")
            let record = try ImageBackupJob.backup(request(directory, level: .full, encoding: .raw), logger: testLogger).record
            let path = "\(directory)/repo/\(record.backupID)/manifest.json"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let old = text.split(separator: "\n").filter { !$0.contains("\"storedBytes\"") }.joined(separator: "\n")
            #expect(old != text)
            try old.write(toFile: path, atomically: true, encoding: .utf8)

            let listed = try BackupRepository(directory: "\(directory)/repo", create: false).volumeBackups()
            #expect(listed.count == 1 && listed[0].record.storedBytes == nil)
            _ = try ImageBackupJob.restore(
                repositoryDirectory: "\(directory)/repo", backup: nil, to: "\(directory)/out.img", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/out.img") == content)
        }
    }
}
