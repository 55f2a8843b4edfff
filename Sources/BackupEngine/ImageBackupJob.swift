public import BlockDelta
public import Logging

import Foundation

/// What `osbackup image backup` is asked to do.
public struct ImageBackupRequest: Sendable {
    /// The raw image file or block device to back up.
    public var source: String
    /// The working directory of hash maps.
    public var stateDirectory: String
    /// The image repository to write the backup into.
    public var repositoryDirectory: String
    /// The level asked for.
    public var level: BackupLevel
    /// The block size asked for (nil: keep the existing maps' size, or the default for a first Full).
    public var blockSize: Int?
    /// The volume id (nil: derived from the source's absolute path).
    public var volumeID: String?
    /// When to read the source with `O_DIRECT` (by default when it is a block device).
    public var directIO: DirectIOMode
    /// Threads and chunk sizes.
    public var parallelism: ParallelIOConfiguration
    /// How the data file is stored in the repository.
    public var dataEncoding: DataEncoding

    /// Creates a request.
    public init(
        source: String, stateDirectory: String, repositoryDirectory: String, level: BackupLevel = .incremental,
        blockSize: Int? = nil, volumeID: String? = nil, directIO: DirectIOMode = .automatic,
        parallelism: ParallelIOConfiguration = .init(), dataEncoding: DataEncoding = .directoryDefault
    ) {
        self.source = source
        self.stateDirectory = stateDirectory
        self.repositoryDirectory = repositoryDirectory
        self.level = level
        self.blockSize = blockSize
        self.volumeID = volumeID
        self.directIO = directIO
        self.parallelism = parallelism
        self.dataEncoding = dataEncoding
    }
}

/// What a finished image backup stored.
public struct ImageBackupOutcome: Sendable {
    /// The volume backup written into the repository (its id is also the job's).
    public var record: VolumeBackupRecord
    /// The scan's totals.
    public var scan: DeltaScanResult
    /// Wall-clock seconds of the scan (reading, hashing and writing).
    public var seconds: Double
}

/// Backs up a local raw image or block device into a directory repository, and restores or verifies it:
/// the engine with no cloud around it. An image job is a job of one volume, filed under
/// `@local/image/` of the namespace; its job id is its volume backup's id.
public enum ImageBackupJob {
    /// Takes one backup; the new map replaces the old one only after the job is stored.
    public static func backup(_ request: ImageBackupRequest, logger: Logger) throws(BlockDeltaError) -> ImageBackupOutcome {
        let volumeID = try VolumeID.validated(request.volumeID ?? derivedVolumeID(for: request.source))
        let state = try VolumeStateStore(directory: request.stateDirectory)
        let repository = try BackupRepository(directory: request.repositoryDirectory, create: true)
        let backupID = BackupID.generate()
        let started = Date()
        let scanRequest = VolumeScanRequest(
            sourcePath: request.source, sourceDescription: request.source, volumeID: volumeID,
            paths: BackupNamespace.volumeFiles(
                folder: BackupNamespace.images, volumeID: volumeID.rawValue,
                volumeName: URL(fileURLWithPath: request.source).lastPathComponent),
            level: request.level, blockSize: request.blockSize, directIO: request.directIO, parallelism: request.parallelism)
        let sink = try DirectorySink(repository: repository, jobID: backupID, dataEncoding: request.dataEncoding)
        let scanned: ScannedVolume
        do {
            scanned = try VolumeScan.run(scanRequest, backupID: backupID, state: state, sink: sink, logger: logger)
        } catch {
            sink.abandon()
            throw error
        }
        do {
            try sink.finish(
                BackupJobManifest(
                    jobID: "\(backupID)", kind: "image", createdAt: ISO8601DateFormatter().string(from: started),
                    requestedLevel: "\(request.level)", volumes: [scanned.record], files: []))
        } catch {
            scanned.discardMap(state: state)
            sink.abandon()
            throw error
        }
        try scanned.installMap(state: state)
        logger.info(
            "backup stored",
            metadata: ["osb-volume": "\(volumeID)", "osb-backup": "\(backupID)", "osb-level": "\(scanned.record.level)"])
        return ImageBackupOutcome(record: scanned.record, scan: scanned.scan, seconds: scanned.seconds)
    }

    /// Restores backup `id` (the newest when nil) with its chain onto `target`.
    public static func restore(
        repositoryDirectory: String, backup id: BackupID?, to target: String,
        parallelism: ParallelIOConfiguration = .init(), logger: Logger
    ) throws(BlockDeltaError) -> (chain: [VolumeBackupRecord], result: ChainApplyResult) {
        let repository = try BackupRepository(directory: repositoryDirectory, create: false)
        let chain = try repository.chain(endingAt: id)
        let result = try ChainRestorer.restore(chain: chain.map(\.files), to: target, configuration: parallelism, logger: logger)
        return (chain.map(\.record), result)
    }

    /// Verifies backup `id` (the newest when nil) and every backup its restore needs.
    public static func verify(
        repositoryDirectory: String, backup id: BackupID?, parallelism: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> (chain: [VolumeBackupRecord], result: ChainApplyResult) {
        let repository = try BackupRepository(directory: repositoryDirectory, create: false)
        let chain = try repository.chain(endingAt: id)
        return (chain.map(\.record), try verify(chain: chain, parallelism: parallelism))
    }

    /// Verifies a chain of stored volume backups: each file belongs to its record, every block matches its digest.
    public static func verify(
        chain: [StoredVolumeBackup], parallelism: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> ChainApplyResult {
        for backup in chain {
            let descriptor = try VolumeBackupReader(files: backup.files).descriptor
            guard "\(descriptor.backupID)" == backup.record.backupID, descriptor.volumeID == backup.record.volumeID else {
                throw .mismatchedChain(path: backup.files.regions, "does not belong to backup \(backup.record.backupID)")
            }
        }
        return try ChainRestorer.verify(chain: chain.map(\.files), configuration: parallelism)
    }

    /// A stable volume id for a local source: a UUID made from the SHA-256 of its absolute path.
    public static func derivedVolumeID(for source: String) -> String {
        let absolute = URL(fileURLWithPath: source).standardizedFileURL.path
        let hasher = SHA256Hasher()
        hasher.update(Array(absolute.utf8))
        let digest = hasher.finalize()
        var bytes = Array(digest.bytes.prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // RFC 9562 version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return "\(BackupID(bytes: bytes)!)"
    }
}
