public import BlockDelta

import Foundation

/// The manifest of one backup in an image repository (`manifest.json`), written last: a backup folder
/// without one is incomplete and ignored.
public struct ImageBackupManifest: Codable, Sendable, Hashable {
    /// The format name, always `osbackup-image-backup`.
    public var format: String = "osbackup-image-backup"
    /// The manifest version.
    public var version: Int = 1
    /// The backup id (a time-ordered UUID).
    public var backupID: String
    /// The backup this one builds on (nil for a Full).
    public var parentID: String?
    /// The Full at the root of the chain.
    public var fullID: String
    /// `full`, `incremental` or `differential`.
    public var level: String
    /// The level asked for, when a Full was taken instead, and why.
    public var fallbackReason: String?
    /// When the backup was taken (ISO 8601).
    public var createdAt: String
    /// The source path as given.
    public var source: String
    /// The volume id.
    public var volumeID: String
    /// The path-safe volume name.
    public var volumeName: String
    /// The volume size in bytes.
    public var volumeSize: UInt64
    /// The block size in bytes.
    public var blockSize: Int
    /// The `.bmp` file name.
    public var regionsFile: String
    /// The `.bmpsha` file name.
    public var digestsFile: String
    /// The `.bvmdk` file name.
    public var dataFile: String
    /// Regions written.
    public var regions: UInt64
    /// Data blocks written.
    public var dataBlocks: UInt64
    /// Zero blocks recorded.
    public var zeroBlocks: UInt64
    /// Bytes of block data stored.
    public var dataBytes: UInt64

    /// The parsed backup id.
    public var id: BackupID? { BackupID(backupID) }
    /// The parsed parent id.
    public var parent: BackupID? { parentID.flatMap(BackupID.init) }
}

/// A folder of local image backups, one sub-folder per backup named by its id:
///
/// ```
/// REPO/<backup id>/manifest.json
/// REPO/<backup id>/<volume id>.bmp
/// REPO/<backup id>/<volume id>.bmpsha
/// REPO/<backup id>/<volume name>_<volume id>.bvmdk
/// REPO/<backup id>.partial/         a backup being written, or one that did not finish
/// ```
public struct ImageRepository: Sendable {
    /// The repository folder.
    public let directory: String

    /// The suffix of a backup folder still being written.
    public static let partialSuffix = ".partial"

    /// Opens the repository at `directory`, creating it when `create` is set.
    public init(directory: String, create: Bool) throws(BlockDeltaError) {
        self.directory = directory
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw .invalidArgument("the repository path is not a directory", path: directory)
            }
        } else if create {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .failed(path: directory, "cannot create the repository: \(error.localizedDescription)")
            }
        } else {
            throw .invalidArgument("no repository here", path: directory, hint: "check the --from path")
        }
    }

    /// The folder of a finished backup.
    public func folder(of id: BackupID) -> String { "\(directory)/\(id)" }

    /// The files of a finished backup.
    public func files(of manifest: ImageBackupManifest) -> VolumeBackupFiles {
        let folder = "\(directory)/\(manifest.backupID)"
        return VolumeBackupFiles(
            regions: "\(folder)/\(manifest.regionsFile)", digests: "\(folder)/\(manifest.digestsFile)",
            data: "\(folder)/\(manifest.dataFile)")
    }

    /// Whether a finished backup with this id is stored.
    public func contains(_ id: BackupID) -> Bool {
        FileManager.default.fileExists(atPath: "\(folder(of: id))/manifest.json")
    }

    /// Reads the manifest of a finished backup.
    public func manifest(of id: BackupID) throws(BlockDeltaError) -> ImageBackupManifest {
        let path = "\(folder(of: id))/manifest.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidArgument(
                "backup \(id) is not in this repository", path: directory, hint: "list the backups with `osbackup image list`")
        }
        do {
            let manifest = try JSONDecoder().decode(ImageBackupManifest.self, from: data)
            guard manifest.format == "osbackup-image-backup", manifest.version == 1, manifest.id == id else {
                throw BlockDeltaError.malformed(path: path, "is not a version 1 osbackup image manifest for \(id)")
            }
            for name in [manifest.regionsFile, manifest.digestsFile, manifest.dataFile]
            where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
                throw BlockDeltaError.malformed(path: path, "names a file outside its backup folder: '\(name)'")
            }
            return manifest
        } catch let error as BlockDeltaError {
            throw error
        } catch {
            throw .malformed(path: path, "is not valid JSON: \(error)")
        }
    }

    /// Every finished backup, oldest first. Folders that are not finished backups are skipped.
    public func backups() throws(BlockDeltaError) -> [ImageBackupManifest] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .failed(path: directory, "cannot list the repository: \(error.localizedDescription)")
        }
        var manifests: [ImageBackupManifest] = []
        for id in names.compactMap(BackupID.init).sorted() where contains(id) {
            manifests.append(try manifest(of: id))
        }
        return manifests
    }

    /// The backups to apply, oldest first, to restore `id` (the newest backup when nil): its Full, then
    /// each backup up to `id`.
    public func chain(endingAt id: BackupID?) throws(BlockDeltaError) -> [ImageBackupManifest] {
        let target: BackupID
        if let id { target = id } else { target = try latestID() }
        var chain: [ImageBackupManifest] = []
        var next: BackupID? = target
        while let current = next {
            guard contains(current) else {
                throw .mismatchedChain(
                    path: directory,
                    "backup \(chain.last?.backupID ?? "\(target)") builds on \(current), which is not in this repository")
            }
            let manifest = try manifest(of: current)
            chain.append(manifest)
            next = manifest.parent
            guard chain.count <= 100_000 else { throw .malformed(path: directory, "backup parents form a loop") }
        }
        return chain.reversed()
    }

    /// The newest finished backup, or a usage error if the repository is empty.
    public func latest() throws(BlockDeltaError) -> ImageBackupManifest {
        guard let newest = try backups().last else {
            throw .invalidArgument("the repository holds no finished backup", path: directory)
        }
        return newest
    }

    /// The id of the newest finished backup, or a usage error if the repository is empty.
    public func latestID() throws(BlockDeltaError) -> BackupID {
        guard let id = try latest().id else { throw .malformed(path: directory, "newest manifest has an invalid id") }
        return id
    }

    /// The lock a backup holds on its partial folder while it writes it.
    static let writerLockName = ".writer.lock"

    /// A backup folder being written, locked against cleanup by other backups.
    public struct PendingBackup: Sendable {
        /// The `<id>.partial` folder.
        public let folder: String
        let lock: FileLock
    }

    /// Creates the folder a new backup is written into, and removes the partial folders of backups that
    /// died (those whose writer lock nobody holds); a backup still running elsewhere keeps its folder.
    public func beginBackup(_ id: BackupID) throws(BlockDeltaError) -> PendingBackup {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasSuffix(Self.partialSuffix) {
            let stale = "\(directory)/\(name)"
            if let lock = try? FileLock.tryAcquire("\(stale)/\(Self.writerLockName)") {
                try? FileManager.default.removeItem(atPath: stale)
                lock.release()
            }
        }
        let path = folder(of: id) + Self.partialSuffix
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw .failed(path: path, "cannot create the backup folder: \(error.localizedDescription)")
        }
        guard let lock = try FileLock.tryAcquire("\(path)/\(Self.writerLockName)") else {
            throw .failed(path: path, "another process locked the new backup folder")
        }
        return PendingBackup(folder: path, lock: lock)
    }

    /// Writes the manifest into the partial folder and publishes the backup under its final name.
    public func commitBackup(_ manifest: ImageBackupManifest, pending: PendingBackup) throws(BlockDeltaError) {
        let partialFolder = pending.folder
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let manifestPath = "\(partialFolder)/manifest.json"
        do {
            let data = try encoder.encode(manifest)
            try data.write(to: URL(fileURLWithPath: manifestPath))
        } catch {
            throw .failed(path: manifestPath, "cannot write the manifest: \(error.localizedDescription)")
        }
        let file = try OpenFile.openForWriting(manifestPath, create: false)
        try file.sync()
        try file.close()
        try syncDirectory(partialFolder)
        let finalPath = "\(directory)/\(manifest.backupID)"
        guard rename(partialFolder, finalPath) == 0 else { throw .io("rename to \(finalPath)", path: partialFolder, errno: errno) }
        // Renamed first, then unlocked: cleanup only ever looks at `.partial` folders.
        unlink("\(finalPath)/\(Self.writerLockName)")
        pending.lock.release()
        try syncDirectory(directory)
    }

    /// Removes the folder of a backup that failed.
    public func abandonBackup(_ pending: PendingBackup) {
        try? FileManager.default.removeItem(atPath: pending.folder)
        pending.lock.release()
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
