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

    /// The volumes of job `jobID` (the newest when nil) chosen by server and volume UUIDs (all when both
    /// are empty), each with its chain, which is checked to exist now (before anything is created).
    public static func make(
        repository: BackupRepository, jobID: BackupID?, servers: [String], volumes: [String]
    ) throws(BlockDeltaError) -> RestorePlan {
        let job: BackupJobManifest
        if let jobID { job = try repository.manifest(ofJob: jobID) } else { job = try repository.latestJob() }
        let servers = Set(servers.map { $0.lowercased() })
        let volumeIDs = Set(volumes.map { $0.lowercased() })
        let wanted = job.volumes.filter { record in
            (servers.isEmpty && volumeIDs.isEmpty) || volumeIDs.contains(record.volumeID.lowercased())
                || record.serverID.map { servers.contains($0.lowercased()) } == true
        }
        guard !wanted.isEmpty else {
            throw .invalidArgument(
                "job \(job.jobID) holds no volume of the servers or volumes selected", path: repository.directory,
                hint: "list what it holds with `osbackup list jobs --from \(repository.directory) --json`")
        }
        let jobFolder = "\(repository.directory)/\(job.jobID)"
        var planned: [PlannedVolume] = []
        for record in wanted {
            guard let id = record.id else { throw .malformed(path: repository.directory, "backup id '\(record.backupID)' is not a UUID") }
            let folder = (record.dataFile as NSString).deletingLastPathComponent
            let folderID = (folder as NSString).lastPathComponent
            let confPath = "\(jobFolder)/\(folder)/\(folderID).conf"
            var configuration: ServerConfiguration?
            if let bytes = FileManager.default.contents(atPath: confPath) {
                do {
                    configuration = try ServerConfiguration.decode(Array(bytes))
                } catch {
                    throw .malformed(path: confPath, "is not a server configuration this version reads: \(error)")
                }
            }
            planned.append(
                PlannedVolume(record: record, chain: try repository.chain(endingAt: id), configuration: configuration, folder: folder))
        }
        return RestorePlan(repository: repository, job: job, volumes: planned)
    }

    /// The folder of the job restored.
    public var jobFolder: String { "\(repository.directory)/\(job.jobID)" }
}
