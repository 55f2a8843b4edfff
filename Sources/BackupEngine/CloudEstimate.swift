public import BlockDelta
public import OpenStackClient

import Logging

/// What the next backup of one volume would do, by ``CloudEstimate``.
public struct VolumeEstimate: Sendable, Codable, Hashable {
    /// The server (nil: a volume attached to no server).
    public var serverID: String?
    /// The server's name.
    public var serverName: String?
    /// The volume UUID.
    public var volumeID: String
    /// The volume's name.
    public var volumeName: String?
    /// Its Cinder size in GiB.
    public var cinderSize: Int
    /// Bytes the backup reads: the whole volume, whatever the level (the scan compares every block).
    public var bytesToRead: UInt64
    /// The level the backup would take.
    public var level: String
    /// Why it would be a Full although another level was asked for.
    public var fallbackReason: String?
    /// The level of the volume's newest backup in the repository given.
    public var lastLevel: String?
    /// Bytes of block data that backup stored (compressed, in a repository).
    public var lastStoredBytes: UInt64?
    /// Bytes of block data the volume's newest Full stored.
    public var lastFullStoredBytes: UInt64?
}

/// What `osbackup estimate` reports.
public struct EstimateReport: Sendable, Codable {
    /// One row per volume.
    public var volumes: [VolumeEstimate]
    /// What would be skipped, and why.
    public var skipped: [SkippedTarget]

    /// Bytes the backup would read in all.
    public var bytesToRead: UInt64 { volumes.reduce(0) { $0 + $1.bytesToRead } }
}

/// Estimates a backup without taking one: no snapshot, no temporary volume, nothing attached. It resolves
/// the selection as `backup` does, plans each volume's level from the working directory's hash maps (the
/// same rules, without taking the volume's lock), and reads what the repository's last backups stored.
public enum CloudEstimate {
    /// Estimates a backup of `selection` at `level`; `repository` (optional) gives the last stored sizes and
    /// tells whether a parent is still stored.
    public static func run(
        selection: TargetSelection, level: BackupLevel, cloud: CloudServices, proxyServerID: String, stateDirectory: String,
        repository: BackupRepository?
    ) async throws(BackupError) -> EstimateReport {
        let targets = try await TargetResolver.resolve(selection, cloud: cloud, proxyServerID: proxyServerID)
        let state: VolumeStateStore
        let stored: [StoredVolumeBackup]
        do {
            state = try VolumeStateStore(directory: stateDirectory)
            stored = try repository?.volumeBackups() ?? []
        } catch {
            throw BackupError.engine(error, resource: repository.map { "repository \($0.directory)" } ?? "state directory")
        }
        let storedIDs = Set(stored.compactMap(\.record.id))
        var quiet = Logger(label: "osbackup.estimate")
        quiet.logLevel = .critical
        var rows: [(Volume, Server?)] = targets.servers.flatMap { target in target.volumes.map { ($0, target.server) } }
        rows += targets.unattachedVolumes.map { ($0, nil) }
        let volumes = rows.map { volume, server in
            let size = UInt64(volume.size) << 30
            let plan = LevelPlanner.plan(
                volumeID: volume.id, volumeSize: size, requested: level, requestedBlockSize: nil, state: state,
                isStored: { repository == nil || storedIDs.contains($0) }, logger: quiet)
            let history = stored.filter { $0.record.volumeID.lowercased() == volume.id.lowercased() }
            return VolumeEstimate(
                serverID: server?.id, serverName: server?.name, volumeID: volume.id, volumeName: volume.name, cinderSize: volume.size,
                bytesToRead: size, level: "\(plan.level)", fallbackReason: plan.fallbackReason, lastLevel: history.last?.record.level,
                lastStoredBytes: history.last.map { $0.record.storedBytes ?? $0.record.dataBytes },
                lastFullStoredBytes: history.last(where: { $0.record.level == "full" }).map { $0.record.storedBytes ?? $0.record.dataBytes })
        }
        return EstimateReport(volumes: volumes, skipped: targets.skipped)
    }
}
