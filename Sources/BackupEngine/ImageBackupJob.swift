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
    /// Whether to read the source with `O_DIRECT`.
    public var directIO: Bool
    /// Threads and chunk sizes.
    public var parallelism: ParallelIOConfiguration

    /// Creates a request.
    public init(
        source: String, stateDirectory: String, repositoryDirectory: String, level: BackupLevel = .incremental,
        blockSize: Int? = nil, volumeID: String? = nil, directIO: Bool = false,
        parallelism: ParallelIOConfiguration = .init()
    ) {
        self.source = source
        self.stateDirectory = stateDirectory
        self.repositoryDirectory = repositoryDirectory
        self.level = level
        self.blockSize = blockSize
        self.volumeID = volumeID
        self.directIO = directIO
        self.parallelism = parallelism
    }
}

/// What a finished image backup stored.
public struct ImageBackupOutcome: Sendable {
    /// The manifest written into the repository.
    public var manifest: ImageBackupManifest
    /// The scan's totals.
    public var scan: DeltaScanResult
    /// Wall-clock seconds of the scan (reading, hashing and writing).
    public var seconds: Double
}

/// Backs up a local raw image or block device into an image repository, and restores or verifies it:
/// the engine with no cloud around it.
public enum ImageBackupJob {
    /// Takes one backup; the new map replaces the old one only after the backup is stored.
    public static func backup(_ request: ImageBackupRequest, logger: Logger) throws(BlockDeltaError) -> ImageBackupOutcome {
        if let blockSize = request.blockSize { _ = try VolumeGeometry(blockSize: blockSize, volumeSize: 0) }
        let source = try BlockSource(path: request.source, directIO: request.directIO, logger: logger)
        let volumeID = request.volumeID ?? derivedVolumeID(for: request.source)
        guard isSafeVolumeID(volumeID) else {
            throw .invalidArgument(
                "volume id '\(volumeID)' must be 1 to \(BackupDescriptor.maximumVolumeIDLength) letters, digits, '.', '_' or '-', not starting with '.'")
        }
        let volumeName = PathSafeName.make(URL(fileURLWithPath: request.source).lastPathComponent)
        let state = try VolumeStateStore(directory: request.stateDirectory)
        let repository = try ImageRepository(directory: request.repositoryDirectory, create: true)
        var logger = logger
        logger[metadataKey: "osb-volume"] = "\(volumeID)"

        guard let volumeLock = try FileLock.tryAcquire(state.lockPath(volumeID: volumeID)) else {
            throw .failed(
                path: state.lockPath(volumeID: volumeID), "another backup of volume \(volumeID) is running",
                hint: "wait for it to finish; the lock goes away with its process")
        }
        defer { volumeLock.release() }

        let plan = LevelPlanner.plan(
            volumeID: volumeID, volumeSize: source.size, requested: request.level, requestedBlockSize: request.blockSize,
            state: state, isStored: repository.contains, logger: logger)
        let backupID = BackupID.generate()
        let descriptor = try BackupDescriptor(
            geometry: VolumeGeometry(blockSize: plan.blockSize, volumeSize: source.size), backupID: backupID,
            parentID: plan.parentID, fullID: plan.fullID(for: backupID), level: plan.level, volumeID: volumeID)
        logger[metadataKey: "osb-backup"] = "\(backupID)"
        logger.info("backup started", metadata: ["osb-level": "\(plan.level)", "osb-geometry": "\(descriptor.geometry)"])

        let pending = try repository.beginBackup(backupID)
        let folder = pending.folder
        let regionsFile = "\(volumeID).bmp"
        let digestsFile = "\(volumeID).bmpsha"
        let dataFile = "\(volumeName)_\(volumeID).bvmdk"
        let files = VolumeBackupFiles(
            regions: "\(folder)/\(regionsFile)", digests: "\(folder)/\(digestsFile)", data: "\(folder)/\(dataFile)")
        do throws(BlockDeltaError) {
            let started = Date()
            let scan = try DeltaScanner.scan(
                source: source, descriptor: descriptor, reference: plan.reference, files: files,
                newMapPath: state.pendingMapPath(volumeID: volumeID), configuration: request.parallelism, logger: logger)
            let seconds = Date().timeIntervalSince(started)
            let manifest = ImageBackupManifest(
                backupID: "\(backupID)", parentID: plan.parentID.map { "\($0)" }, fullID: "\(descriptor.fullID)",
                level: "\(plan.level)", fallbackReason: plan.fallbackReason,
                createdAt: ISO8601DateFormatter().string(from: started), source: request.source, volumeID: volumeID,
                volumeName: volumeName, volumeSize: source.size, blockSize: plan.blockSize, regionsFile: regionsFile,
                digestsFile: digestsFile, dataFile: dataFile, regions: scan.summary.regionCount,
                dataBlocks: scan.summary.dataBlocks, zeroBlocks: scan.summary.zeroBlocks, dataBytes: scan.summary.dataBytes)
            try repository.commitBackup(manifest, pending: pending)
            try state.installPendingMap(volumeID: volumeID, level: plan.level)
            logger.info(
                "backup stored",
                metadata: [
                    "osb-data-bytes": "\(scan.summary.dataBytes)", "osb-regions": "\(scan.summary.regionCount)",
                    "osb-seconds": "\(String(format: "%.2f", seconds))",
                ])
            return ImageBackupOutcome(manifest: manifest, scan: scan, seconds: seconds)
        } catch {
            repository.abandonBackup(pending)
            state.discardPendingMap(volumeID: volumeID)
            throw error
        }
    }

    /// Restores backup `id` (the newest when nil) with its chain onto `target`.
    public static func restore(
        repositoryDirectory: String, backup id: BackupID?, to target: String,
        parallelism: ParallelIOConfiguration = .init(), logger: Logger
    ) throws(BlockDeltaError) -> (chain: [ImageBackupManifest], result: ChainApplyResult) {
        let repository = try ImageRepository(directory: repositoryDirectory, create: false)
        let chain = try repository.chain(endingAt: id)
        let result = try ChainRestorer.restore(
            chain: chain.map(repository.files(of:)), to: target, configuration: parallelism, logger: logger)
        return (chain, result)
    }

    /// Verifies backup `id` (the newest when nil) and every backup its restore needs.
    public static func verify(
        repositoryDirectory: String, backup id: BackupID?, parallelism: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> (chain: [ImageBackupManifest], result: ChainApplyResult) {
        let repository = try ImageRepository(directory: repositoryDirectory, create: false)
        let chain = try repository.chain(endingAt: id)
        let files = chain.map(repository.files(of:))
        for (manifest, backupFiles) in zip(chain, files) {
            let descriptor = try VolumeBackupReader(files: backupFiles).descriptor
            guard "\(descriptor.backupID)" == manifest.backupID, descriptor.volumeID == manifest.volumeID else {
                throw .mismatchedChain(path: backupFiles.regions, "does not belong to backup \(manifest.backupID)")
            }
        }
        return (chain, try ChainRestorer.verify(chain: files, configuration: parallelism))
    }

    /// Whether `id` can name files in the state directory and the repository.
    static func isSafeVolumeID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= BackupDescriptor.maximumVolumeIDLength && !id.hasPrefix(".")
            && id.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
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
