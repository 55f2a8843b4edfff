public import BlockDelta

/// Where a job's namespace goes: a directory repository, a tar stream, and (issue 9) the Bacula stream.
///
/// The protocol of a job with its sink:
/// 1. small whole files (``writeFile(_:contents:)``: `.name`, `.conf`, flavors) and volume backups in any
///    order; a volume's scan writes its three files where ``beginVolume(_:)`` says, then
///    ``commitVolume(_:files:)`` hands them over (a stream sends them then, regions, digests, data, in one
///    piece) or ``abandonVolume(_:files:)`` drops them;
/// 2. ``finish(_:)`` once: when it returns, everything is stored (synced and published) or sent whole. Only
///    then may the job install its new hash maps (the second commit); ``abandon()`` instead on failure.
///
/// Calls may come from several volume tasks at once: sinks serialise what must be serial.
public protocol BackupSink: AnyObject, Sendable {
    /// Whether earlier volume backup `id` is still stored, so an Incremental of the volume whose files go
    /// to `paths` may build on it. A tar stream cannot know and answers true (its chain is kept by whoever
    /// keeps the streams); the Bacula stream asks the catalog whether it holds an earlier version of `paths`.
    func isStored(_ id: BackupID, paths: VolumeNamespacePaths) -> Bool
    /// Stores a small whole file at a namespace path.
    func writeFile(_ path: String, contents: [UInt8]) throws(BlockDeltaError)
    /// The local files a volume's scan writes into for these namespace paths.
    func beginVolume(_ paths: VolumeNamespacePaths) throws(BlockDeltaError) -> VolumeBackupFiles
    /// Takes a finished volume backup.
    func commitVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) throws(BlockDeltaError)
    /// Drops a volume backup that failed.
    func abandonVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles)
    /// Told of each volume of the job that was not saved (before ``finish(_:)``): a stream that replaces an
    /// earlier version of the namespace (Bacula's Accurate mode) keeps that volume's earlier files.
    func volumeNotSaved(_ paths: VolumeNamespacePaths)
    /// Commits the job with its manifest.
    func finish(_ manifest: BackupJobManifest) throws(BlockDeltaError)
    /// Drops the job.
    func abandon()
    /// How the scan writes a volume's data file: streams carry raw data (the default), a directory
    /// repository stores it zstd-compressed per block.
    var dataEncoding: DataEncoding { get }
}

extension BackupSink {
    /// Raw block data: what a stream carries.
    public var dataEncoding: DataEncoding { .raw }
}

extension BackupSink {
    /// Nothing to do for a repository or a tar stream: each job stands alone.
    public func volumeNotSaved(_ paths: VolumeNamespacePaths) {}
}

/// The sink of a directory repository: the job's namespace is written straight into `<job id>.partial`,
/// which ``finish(_:)`` publishes by renaming it after writing the manifest and syncing every folder.
public final class DirectorySink: BackupSink {
    /// The repository.
    public let repository: BackupRepository
    /// How volumes' data files are written: zstd per block unless asked otherwise.
    public let dataEncoding: DataEncoding
    private let pending: BackupRepository.PendingJob
    private let stored: Set<BackupID>

    /// Opens the job folder of `jobID` in `repository` (removing the leftovers of jobs that died); the
    /// job's data files are written with `dataEncoding`.
    public init(
        repository: BackupRepository, jobID: BackupID, dataEncoding: DataEncoding = .directoryDefault
    ) throws(BlockDeltaError) {
        self.repository = repository
        self.dataEncoding = dataEncoding
        stored = try repository.storedBackupIDs()
        pending = try repository.beginJob(jobID)
    }

    public func isStored(_ id: BackupID, paths: VolumeNamespacePaths) -> Bool { stored.contains(id) }

    public func writeFile(_ path: String, contents: [UInt8]) throws(BlockDeltaError) {
        let full = try prepare(path)
        try DurableFile.write(contents, to: full)
    }

    public func beginVolume(_ paths: VolumeNamespacePaths) throws(BlockDeltaError) -> VolumeBackupFiles {
        VolumeBackupFiles(regions: try prepare(paths.regions), digests: try prepare(paths.digests), data: try prepare(paths.data))
    }

    public func commitVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) throws(BlockDeltaError) {}

    public func abandonVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) {
        for path in files.all { unlink(path) }
    }

    public func finish(_ manifest: BackupJobManifest) throws(BlockDeltaError) {
        try repository.commitJob(manifest, pending: pending)
    }

    public func abandon() { repository.abandonJob(pending) }

    private func prepare(_ path: String) throws(BlockDeltaError) -> String { try pending.prepare(path) }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
