public import BlockDelta

import Foundation

/// One backup of one volume inside a job: where its three files are in the job's namespace and what they hold.
public struct VolumeBackupRecord: Codable, Sendable, Hashable {
    /// The backup id of this volume backup (a time-ordered UUID); chains link these.
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
    /// What was read: the source path of an image job, the Cinder volume of a cloud job.
    public var source: String
    /// The volume id (the Cinder volume UUID in a cloud job).
    public var volumeID: String
    /// The path-safe volume name (empty when the volume has none).
    public var volumeName: String
    /// The volume size in bytes.
    public var volumeSize: UInt64
    /// The Cinder size in GiB as Cinder recorded it (cloud jobs; a restore creates exactly this size).
    public var cinderSize: Int?
    /// The server the volume was attached to (cloud jobs; nil for an unattached volume or an image).
    public var serverID: String?
    /// The block size in bytes.
    public var blockSize: Int
    /// The `.bmp` file, relative to the job folder.
    public var regionsFile: String
    /// The `.bmpsha` file, relative to the job folder.
    public var digestsFile: String
    /// The `.bvmdk` file, relative to the job folder.
    public var dataFile: String
    /// Regions written.
    public var regions: UInt64
    /// Data blocks written.
    public var dataBlocks: UInt64
    /// Zero blocks recorded.
    public var zeroBlocks: UInt64
    /// Bytes of block data backed up (uncompressed).
    public var dataBytes: UInt64
    /// Bytes the data file stores them in: zstd frames in a directory repository, or ``dataBytes`` for
    /// raw data. Absent in manifests written before compression: read as ``dataBytes``.
    public var storedBytes: UInt64? = nil

    /// The parsed backup id.
    public var id: BackupID? { BackupID(backupID) }
    /// The parsed parent id.
    public var parent: BackupID? { parentID.flatMap(BackupID.init) }
}

/// The manifest of one job (`manifest.json` in its folder), written last: a folder without one is an
/// unfinished job and is ignored.
public struct BackupJobManifest: Codable, Sendable, Hashable {
    /// The format name, always `osbackup-job`.
    public var format: String = BackupJobManifest.formatName
    /// The manifest version.
    public var version: Int = 1
    /// The job id (a time-ordered UUID; an image job's is its one volume backup's id).
    public var jobID: String
    /// `image` or `cloud`.
    public var kind: String
    /// When the job started (ISO 8601).
    public var createdAt: String
    /// The level asked for.
    public var requestedLevel: String
    /// The volume backups the job stored.
    public var volumes: [VolumeBackupRecord]
    /// Every other file of the namespace the job stored (`.name`, `.conf`, flavors), relative to the folder.
    public var files: [String]

    /// The format name of version 1.
    public static let formatName = "osbackup-job"

    /// Creates a manifest.
    public init(jobID: String, kind: String, createdAt: String, requestedLevel: String, volumes: [VolumeBackupRecord], files: [String]) {
        self.jobID = jobID
        self.kind = kind
        self.createdAt = createdAt
        self.requestedLevel = requestedLevel
        self.volumes = volumes
        self.files = files
    }

    /// The parsed job id.
    public var id: BackupID? { BackupID(jobID) }
}

/// A volume backup found in a repository, with the files to read.
public struct StoredVolumeBackup: Sendable, Hashable {
    /// The job that holds it.
    public var jobID: String
    /// What it is.
    public var record: VolumeBackupRecord
    /// Its three files, as absolute paths.
    public var files: VolumeBackupFiles
}

/// A directory repository: one folder per job, holding the job's backup namespace and its manifest. Image
/// jobs and cloud jobs share this one format.
///
/// ```
/// REPO/<job id>/manifest.json
/// REPO/<job id>/@openstack/nova/server/<uuid>_<name>.name           (cloud jobs: the namespace)
/// REPO/<job id>/@openstack/nova/server/<uuid>/<volume uuid>.bmp ...
/// REPO/<job id>/@local/image/<volume id>.bmp ...                    (image jobs)
/// REPO/<job id>.partial/                                              a job being written, or one that died
/// ```
public struct BackupRepository: Sendable {
    /// The repository folder.
    public let directory: String

    /// The suffix of a job folder still being written.
    public static let partialSuffix = ".partial"
    /// The name of a job's manifest.
    public static let manifestName = "manifest.json"

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

    /// The folder of a finished job.
    public func folder(ofJob id: BackupID) -> String { "\(directory)/\(id)" }

    /// The absolute files of a volume backup of job `jobID`.
    public func files(of record: VolumeBackupRecord, jobID: String) -> VolumeBackupFiles {
        let folder = "\(directory)/\(jobID)"
        return VolumeBackupFiles(
            regions: "\(folder)/\(record.regionsFile)", digests: "\(folder)/\(record.digestsFile)",
            data: "\(folder)/\(record.dataFile)")
    }

    /// Whether a finished job with this id is stored.
    public func containsJob(_ id: BackupID) -> Bool {
        FileManager.default.fileExists(atPath: "\(folder(ofJob: id))/\(Self.manifestName)")
    }

    /// Reads the manifest of a finished job and checks that every path it names stays inside its folder.
    public func manifest(ofJob id: BackupID) throws(BlockDeltaError) -> BackupJobManifest {
        let path = "\(folder(ofJob: id))/\(Self.manifestName)"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidArgument(
                "job \(id) is not in this repository", path: directory, hint: "list the jobs with `osbackup list jobs --from \(directory)`")
        }
        let manifest: BackupJobManifest
        do {
            manifest = try JSONDecoder().decode(BackupJobManifest.self, from: data)
        } catch {
            throw .malformed(path: path, "is not valid JSON: \(error)")
        }
        guard manifest.format == BackupJobManifest.formatName, manifest.version == 1, manifest.id == id else {
            throw .malformed(path: path, "is not a version 1 osbackup job manifest for \(id)")
        }
        let names = manifest.files + manifest.volumes.flatMap { [$0.regionsFile, $0.digestsFile, $0.dataFile] }
        for name in names where !NamespacePath.isContained(name) {
            throw .malformed(path: path, "names a file outside its backup folder: '\(name)'")
        }
        return manifest
    }

    /// Every finished job, oldest first. Folders that are not finished jobs are skipped.
    public func jobs() throws(BlockDeltaError) -> [BackupJobManifest] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .failed(path: directory, "cannot list the repository: \(error.localizedDescription)")
        }
        var manifests: [BackupJobManifest] = []
        for id in names.compactMap(BackupID.init).sorted() where containsJob(id) {
            manifests.append(try manifest(ofJob: id))
        }
        return manifests
    }

    /// Every stored volume backup, oldest job first.
    public func volumeBackups() throws(BlockDeltaError) -> [StoredVolumeBackup] {
        try jobs().flatMap { job in
            job.volumes.map { StoredVolumeBackup(jobID: job.jobID, record: $0, files: files(of: $0, jobID: job.jobID)) }
        }
    }

    /// The ids of every stored volume backup (what an Incremental may build on).
    public func storedBackupIDs() throws(BlockDeltaError) -> Set<BackupID> {
        Set(try volumeBackups().compactMap(\.record.id))
    }

    /// The volume backups to apply, oldest first, to restore volume backup `id` (the newest volume backup,
    /// of `volumeID` when given, when nil): its Full, then each backup up to `id`.
    public func chain(endingAt id: BackupID?, volumeID: String? = nil) throws(BlockDeltaError) -> [StoredVolumeBackup] {
        let all = try volumeBackups()
        var byID: [BackupID: StoredVolumeBackup] = [:]
        for backup in all { if let id = backup.record.id { byID[id] = backup } }
        let target: BackupID
        if let id {
            target = id
        } else {
            guard let newest = all.last(where: { volumeID == nil || $0.record.volumeID == volumeID })?.record.id else {
                throw .invalidArgument(
                    volumeID.map { "the repository holds no backup of volume \($0)" } ?? "the repository holds no finished backup",
                    path: directory)
            }
            target = newest
        }
        var chain: [StoredVolumeBackup] = []
        var next: BackupID? = target
        while let current = next {
            guard let backup = byID[current] else {
                if chain.isEmpty {
                    throw .invalidArgument(
                        "backup \(current) is not in this repository", path: directory,
                        hint: "list them with `osbackup list jobs --from \(directory)`")
                }
                throw .mismatchedChain(
                    path: directory, "backup \(chain.last!.record.backupID) builds on \(current), which is not in this repository")
            }
            chain.append(backup)
            next = backup.record.parent
            guard chain.count <= 100_000 else { throw .malformed(path: directory, "backup parents form a loop") }
        }
        return chain.reversed()
    }

    /// The newest finished job, or a usage error if the repository is empty.
    public func latestJob() throws(BlockDeltaError) -> BackupJobManifest {
        guard let newest = try jobs().last else {
            throw .invalidArgument("the repository holds no finished backup", path: directory)
        }
        return newest
    }

    /// The lock a job holds on its partial folder while it writes it.
    static let writerLockName = ".writer.lock"

    /// A job folder being written, locked against cleanup by other jobs.
    public struct PendingJob: Sendable {
        /// The `<id>.partial` folder.
        public let folder: String
        let lock: FileLock

        /// The absolute path of a namespace path in the folder, its folders created; a path that would
        /// leave the folder is refused.
        public func prepare(_ path: String) throws(BlockDeltaError) -> String {
            guard NamespacePath.isContained(path) else {
                throw .invalidArgument("namespace path '\(path)' would leave the job folder", path: folder)
            }
            let full = "\(folder)/\(path)"
            let parent = (full as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw .failed(path: parent, "cannot create the folder: \(error.localizedDescription)")
            }
            return full
        }
    }

    /// Creates the folder a new job is written into, and removes the partial folders of jobs that died
    /// (those whose writer lock nobody holds); a job still running elsewhere keeps its folder.
    public func beginJob(_ id: BackupID) throws(BlockDeltaError) -> PendingJob {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasSuffix(Self.partialSuffix) {
            let stale = "\(directory)/\(name)"
            if let lock = try? FileLock.tryAcquire("\(stale)/\(Self.writerLockName)") {
                try? FileManager.default.removeItem(atPath: stale)
                lock.release()
            }
        }
        let path = folder(ofJob: id) + Self.partialSuffix
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw .failed(path: path, "cannot create the backup folder: \(error.localizedDescription)")
        }
        guard let lock = try FileLock.tryAcquire("\(path)/\(Self.writerLockName)") else {
            throw .failed(path: path, "another process locked the new backup folder")
        }
        return PendingJob(folder: path, lock: lock)
    }

    /// Writes the manifest into the partial folder, syncs every folder of it, and publishes the job under
    /// its final name.
    public func commitJob(_ manifest: BackupJobManifest, pending: PendingJob) throws(BlockDeltaError) {
        let partialFolder = pending.folder
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do {
            data = try encoder.encode(manifest)
        } catch {
            throw .failed(path: partialFolder, "cannot encode the manifest: \(error)")
        }
        try DurableFile.write(Array(data), to: "\(partialFolder)/\(Self.manifestName)")
        // Every folder the job created, deepest first, then the job folder: each new entry is durable.
        var folders: Set<String> = []
        for file in manifest.files + manifest.volumes.flatMap({ [$0.regionsFile, $0.digestsFile, $0.dataFile] }) {
            var folder = (file as NSString).deletingLastPathComponent
            while !folder.isEmpty, folders.insert(folder).inserted {
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        for folder in folders.sorted(by: { $0.count > $1.count }) { try syncDirectory("\(partialFolder)/\(folder)") }
        try syncDirectory(partialFolder)
        let finalPath = "\(directory)/\(manifest.jobID)"
        guard rename(partialFolder, finalPath) == 0 else { throw .io("rename to \(finalPath)", path: partialFolder, errno: errno) }
        // Renamed first, then unlocked: cleanup only ever looks at `.partial` folders.
        unlink("\(finalPath)/\(Self.writerLockName)")
        pending.lock.release()
        try syncDirectory(directory)
    }

    /// Removes the folder of a job that failed.
    public func abandonJob(_ pending: PendingJob) {
        try? FileManager.default.removeItem(atPath: pending.folder)
        pending.lock.release()
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
