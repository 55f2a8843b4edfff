public import BlockDelta

import Foundation

/// What a restore of one job will put back, whatever the target: the job, and for each volume chosen its
/// chain (its Full first) and the `.conf` saved with it.
///
/// Every restore (a folder, new Cinder volumes, a new server, in place) starts from a plan, so the
/// selection rules and their errors are the same everywhere.
public struct RestorePlan: Sendable {
    /// One volume to restore.
    public struct PlannedVolume: Sendable {
        /// The newest backup of the volume in the job.
        public var record: VolumeBackupRecord
        /// The backups to apply, oldest (the Full) first.
        public var chain: [StoredVolumeBackup]
        /// The configuration saved beside it (its server's, or its own for a volume attached to no server).
        public var configuration: ServerConfiguration?
        /// The namespace folder of its files (`@openstack/nova/server/<uuid>`, `@openstack/cinder/volume/<uuid>`).
        public var folder: String

        /// What the `.conf` says of this volume.
        public var savedVolume: ServerConfiguration.VolumeInfo? {
            configuration?.volumes.first { $0.id.lowercased() == record.volumeID.lowercased() }
        }

        /// The Cinder size in GiB a restored volume takes: the `.conf`'s, else the record's, else the bytes
        /// rounded up to GiB (only images of `osbackup image` have neither).
        public var cinderSize: Int {
            if let size = savedVolume?.size ?? record.cinderSize { return size }
            let gib: UInt64 = 1 << 30
            return Int((record.volumeSize + gib - 1) / gib)
        }
    }

    /// The repository.
    public var repository: BackupRepository
    /// The job restored.
    public var job: BackupJobManifest
    /// The volumes chosen, in the job's order.
    public var volumes: [PlannedVolume]

    /// The volumes of job `jobID` (the newest when nil) chosen by servers (UUID, or the name their `.conf`
    /// recorded) and volume UUIDs (all when both are empty), each with its chain, which is checked to exist
    /// now (before anything is created). A server the job does not hold is an error naming it.
    public static func make(
        repository: BackupRepository, jobID: BackupID?, servers: [String], volumes: [String]
    ) throws(BlockDeltaError) -> RestorePlan {
        let job: BackupJobManifest
        if let jobID { job = try repository.manifest(ofJob: jobID) } else { job = try repository.latestJob() }
        let volumeIDs = Set(volumes.map { $0.lowercased() })
        let jobFolder = "\(repository.directory)/\(job.jobID)"
        var configurations: [String: ServerConfiguration?] = [:]
        var planned: [PlannedVolume] = []
        var matchedServers: Set<String> = []
        for record in job.volumes {
            let folder = (record.dataFile as NSString).deletingLastPathComponent
            if configurations[folder] == nil {
                configurations[folder] = .some(try configuration(in: "\(jobFolder)/\(folder)"))
            }
            let configuration = configurations[folder] ?? nil
            // A server by UUID, or by the name its .conf recorded.
            let server = servers.first { wanted in
                record.serverID?.lowercased() == wanted.lowercased() || (record.serverID != nil && configuration?.server?.name == wanted)
            }
            if let server { matchedServers.insert(server) }
            guard (servers.isEmpty && volumeIDs.isEmpty) || server != nil || volumeIDs.contains(record.volumeID.lowercased()) else { continue }
            guard let id = record.id else { throw .malformed(path: repository.directory, "backup id '\(record.backupID)' is not a UUID") }
            planned.append(
                PlannedVolume(record: record, chain: try repository.chain(endingAt: id), configuration: configuration, folder: folder))
        }
        for server in servers where !matchedServers.contains(server) {
            throw .invalidArgument(
                "job \(job.jobID) holds no server '\(server)' (by UUID or name)", path: repository.directory,
                hint: "list what it holds with `osbackup list jobs --from \(repository.directory) --json`")
        }
        guard !planned.isEmpty else {
            throw .invalidArgument(
                "job \(job.jobID) holds no volume of the servers or volumes selected", path: repository.directory,
                hint: "list what it holds with `osbackup list jobs --from \(repository.directory) --json`")
        }
        return RestorePlan(repository: repository, job: job, volumes: planned)
    }

    /// The newest backup of every volume the repository holds, whichever job holds it (a Bacula restore
    /// spools each part of a chain as a job of its own, and volumes' chains need not end in one job).
    /// `job` is the newest job, which must hold the `.conf` and `.name` files of every folder.
    public static func newestOfEachVolume(repository: BackupRepository) throws(BlockDeltaError) -> RestorePlan {
        let job = try repository.latestJob()
        var newest: [String: StoredVolumeBackup] = [:]
        for backup in try repository.volumeBackups() { newest[backup.record.volumeID.lowercased()] = backup }
        var planned: [PlannedVolume] = []
        for backup in newest.values.sorted(by: { $0.record.dataFile < $1.record.dataFile }) {
            guard let id = backup.record.id else {
                throw .malformed(path: repository.directory, "backup id '\(backup.record.backupID)' is not a UUID")
            }
            let folder = (backup.record.dataFile as NSString).deletingLastPathComponent
            planned.append(
                PlannedVolume(
                    record: backup.record, chain: try repository.chain(endingAt: id),
                    configuration: try configuration(in: "\(repository.directory)/\(job.jobID)/\(folder)"), folder: folder))
        }
        guard !planned.isEmpty else { throw .invalidArgument("the restore holds no volume backup", path: repository.directory) }
        return RestorePlan(repository: repository, job: job, volumes: planned)
    }

    /// The `.conf` of a namespace folder (`<folder>/<folder's uuid>.conf`), nil when it has none.
    private static func configuration(in folder: String) throws(BlockDeltaError) -> ServerConfiguration? {
        let path = "\(folder)/\((folder as NSString).lastPathComponent).conf"
        guard let bytes = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try ServerConfiguration.decode(Array(bytes))
        } catch {
            throw .malformed(path: path, "is not a server configuration this version reads: \(error)")
        }
    }

    /// The folder of the job restored.
    public var jobFolder: String { "\(repository.directory)/\(job.jobID)" }
}
