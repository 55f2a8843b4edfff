public import BlockDelta
public import Logging
import OpenStackClient

import Foundation

/// What `osbackup restore --to-cloud` (or `--in-place`) is asked to do.
public struct CloudRestoreRequest: Sendable {
    /// Where the data goes.
    public enum Target: Sendable {
        /// A new Cinder volume per volume restored.
        case newVolumes
        /// New volumes, then a new server per restored server booted from them.
        case newServer(NewServerOptions)
        /// Back onto the original volumes (they must exist and be attached to nothing).
        case inPlace
    }

    /// What a new server may take from the command line instead of the `.conf`.
    public struct NewServerOptions: Sendable {
        /// The server's name (default: the name prefix and the original name).
        public var name: String?
        /// A flavor id or name.
        public var flavor: String?
        /// Network ids (default: the networks the server had).
        public var networks: [String]
        /// Its availability zone.
        public var availabilityZone: String?
        /// Its key pair.
        public var keyName: String?

        /// Creates the options.
        public init(name: String? = nil, flavor: String? = nil, networks: [String] = [], availabilityZone: String? = nil, keyName: String? = nil) {
            self.name = name
            self.flavor = flavor
            self.networks = networks
            self.availabilityZone = availabilityZone
            self.keyName = keyName
        }
    }

    /// Where the data goes.
    public var target: Target
    /// Put before the original name of each new volume (and server).
    public var namePrefix: String
    /// The volume type of new volumes (default: the original's).
    public var volumeType: String?
    /// The availability zone of new volumes (default: the original's).
    public var availabilityZone: String?
    /// The working directory (journal of the volumes being written).
    public var stateDirectory: String
    /// The proxy's Nova server id.
    public var proxyServerID: String
    /// Where attached volumes appear.
    public var devices: DeviceLocator
    /// Volumes written at once.
    public var parallel: Int
    /// Threads and chunk sizes of each volume's restore.
    public var parallelism: ParallelIOConfiguration
    /// How long to wait for a new server to become `ACTIVE`.
    public var serverTimeout: Duration

    /// Creates a request.
    public init(
        target: Target, namePrefix: String = "restored-", volumeType: String? = nil, availabilityZone: String? = nil,
        stateDirectory: String, proxyServerID: String, devices: DeviceLocator = .init(), parallel: Int = 2,
        parallelism: ParallelIOConfiguration = .init(workerCount: 2), serverTimeout: Duration = .seconds(900)
    ) {
        self.target = target
        self.namePrefix = namePrefix
        self.volumeType = volumeType
        self.availabilityZone = availabilityZone
        self.stateDirectory = stateDirectory
        self.proxyServerID = proxyServerID
        self.devices = devices
        self.parallel = max(1, parallel)
        self.parallelism = parallelism
        self.serverTimeout = serverTimeout
    }
}

/// One volume put back into the cloud.
public struct RestoredCloudVolume: Sendable, Codable, Hashable {
    /// The volume that was backed up.
    public var originalVolumeID: String
    /// The volume written (new, or the original in place).
    public var volumeID: String
    /// Its name.
    public var name: String?
    /// The server it belonged to.
    public var originalServerID: String?
    /// Backups applied.
    public var chainLength: Int
    /// Bytes of the volume restored.
    public var bytes: UInt64
}

/// What a cloud restore did.
public struct CloudRestoreReport: Sendable, Codable {
    /// The restore's own job id (its journal).
    public var jobID: String
    /// The backup job restored.
    public var backupJobID: String
    /// The volumes written.
    public var volumes: [RestoredCloudVolume]
    /// New servers, by original server id.
    public var servers: [String: String]
}

/// Puts backed-up volumes back into the cloud (DESIGN §5): each chain is written onto a volume attached
/// to the proxy, a new one (created in the caller's project with the `.conf`'s Cinder size, type and
/// zone) or the original in place; new servers boot from the new volumes.
///
/// A new volume is journaled and tagged like a temporary one until it is written and detached (and, for a
/// new server, until the server is `ACTIVE`): a failure, a cancel or a crash deletes it; a finished one
/// loses the tags and its `osbackup-` journal entry, keeps the original's metadata, and is named after
/// the original with a prefix.
public enum CloudRestoreJob {
    /// Runs the restore of `plan`. Any failure undoes what this restore created and throws.
    public static func run(
        _ request: CloudRestoreRequest, plan: RestorePlan, cloud: CloudServices, jobID: BackupID = .generate(), logger: Logger
    ) async throws(BackupError) -> CloudRestoreReport {
        var logger = logger
        logger[metadataKey: "osb-job"] = "\(jobID)"
        let journal: ResourceJournal
        do {
            journal = try ResourceJournal.create(stateDirectory: request.stateDirectory, jobID: "\(jobID)", proxyServerID: request.proxyServerID)
        } catch {
            throw BackupError.engine(error, resource: "resource journal")
        }
        let sweeper = ResourceSweeper(cloud: cloud, logger: logger)
        _ = await CloudBackupJob.sweepOrphans(stateDirectory: request.stateDirectory, sweeper: sweeper, logger: logger)
        let attacher = ProxyAttacher(
            cloud: cloud, journal: journal, sweeper: sweeper, gate: AttachGate(limit: request.parallel),
            proxyServerID: request.proxyServerID, devices: request.devices, jobID: "\(jobID)")
        let writer = CloudVolumeWriter(attacher: attacher, request: request, jobID: jobID, logger: logger)
        defer { journal.close() }
        do {
            if case .inPlace = request.target { try await checkInPlaceTargets(plan, cloud: cloud) }
            if case .newServer(let options) = request.target, options.name != nil,
                Set(plan.volumes.map { $0.record.serverID ?? "" }).count > 1
            {
                throw BackupError(
                    .configuration, resource: "restore", "one --name for several servers would give them all the same name",
                    hint: "restore one server at a time with --server, or leave --name out (the prefix and each original name)")
            }
            let written = try await writeVolumes(plan.volumes, writer: writer, parallel: request.parallel)
            var servers: [String: String] = [:]
            if case .newServer(let options) = request.target {
                for (originalID, volumes) in Dictionary(grouping: written, by: { $0.planned.record.serverID ?? "" }).sorted(by: { $0.key < $1.key }) {
                    let serverID = try await ServerRebuilder(cloud: cloud, request: request, options: options, logger: logger)
                        .create(from: volumes, originalServerID: originalID, journal: journal)
                    servers[originalID] = serverID
                    // The server is the operator's now, and so are its disks: a later failure must not touch them.
                    for volume in volumes { try await writer.release(volume) }
                }
            } else {
                // Finished: the new volumes lose the tags that would let a sweep delete them.
                for volume in written { try await writer.release(volume) }
            }
            return CloudRestoreReport(
                jobID: "\(jobID)", backupJobID: plan.job.jobID, volumes: written.map(\.restored), servers: servers)
        } catch {
            let failure = BackupError.from(error, resource: nil)
            let leftovers = await withoutCancellation { await sweeper.replay(journal) }
            for leftover in leftovers {
                logger.warning("resource of the failed restore not removed yet (the next job sweeps it)", metadata: ["osb-error": "\(leftover)"])
            }
            throw failure
        }
    }

    /// Refuses an in-place restore onto a volume that is gone, attached, busy or too small, before any is written.
    static func checkInPlaceTargets(_ plan: RestorePlan, cloud: CloudServices) async throws(BackupError) {
        for planned in plan.volumes {
            let id = planned.record.volumeID
            let volume: Volume
            do {
                volume = try await cloud.blockStorage.volume(id: id)
            } catch {
                if error.status == 404 {
                    throw BackupError(
                        .notFound, resource: "volume \(id)", "the original volume no longer exists",
                        hint: "restore it to a new volume with --to-cloud")
                }
                throw BackupError.cloud(error, resource: "volume \(id)")
            }
            if let attachment = volume.attachments.first {
                throw BackupError(
                    .busy, resource: "volume \(id)", "it is attached to server \(attachment.serverID): an in-place restore would overwrite a disk in use",
                    hint: "stop the server and detach the volume, then run the restore again")
            }
            guard volume.status == "available" else {
                throw BackupError(
                    .conflict, resource: "volume \(id)", "its status is \(volume.status), not available",
                    hint: "wait until it is available (or reset its state), then run the restore again")
            }
            guard UInt64(volume.size) << 30 >= planned.record.volumeSize else {
                throw BackupError(
                    .conflict, resource: "volume \(id)",
                    "it holds \(volume.size) GiB, the backup \(planned.record.volumeSize) bytes",
                    hint: "extend the volume, or restore to a new volume with --to-cloud")
            }
        }
    }

    /// Writes every planned volume, up to `parallel` at once; the first failure cancels the others.
    private static func writeVolumes(
        _ volumes: [RestorePlan.PlannedVolume], writer: CloudVolumeWriter, parallel: Int
    ) async throws(BackupError) -> [WrittenVolume] {
        do {
            return try await withThrowingTaskGroup(of: (Int, WrittenVolume).self) { group in
                var written: [Int: WrittenVolume] = [:]
                for (index, planned) in volumes.enumerated() {
                    if index >= parallel, let (done, volume) = try await group.next() { written[done] = volume }
                    group.addTask { (index, try await writer.write(planned)) }
                }
                while let (done, volume) = try await group.next() { written[done] = volume }
                return volumes.indices.compactMap { written[$0] }
            }
        } catch {
            throw BackupError.from(error, resource: nil)
        }
    }
}

/// A volume a restore has written, with the journal entry that keeps it deletable until the restore ends.
struct WrittenVolume: Sendable {
    let planned: RestorePlan.PlannedVolume
    let restored: RestoredCloudVolume
    /// The journal key of a new volume (nil in place: the original is never deleted).
    let journalKey: UInt64?
    /// The metadata it keeps once released.
    let finalMetadata: [String: String]
}

/// Writes one chain onto a volume attached to the proxy: a new volume, or the original in place.
struct CloudVolumeWriter: Sendable {
    let attacher: ProxyAttacher
    let request: CloudRestoreRequest
    let jobID: BackupID
    let logger: Logger

    /// Creates (or takes) the volume, attaches it, writes and verifies the chain, detaches it. On any failure
    /// a new volume is deleted; the original is only detached.
    func write(_ planned: RestorePlan.PlannedVolume) async throws -> WrittenVolume {
        var logger = logger
        let record = planned.record
        logger[metadataKey: "osb-volume"] = "\(record.volumeID)"
        let track = WorkflowTrack()
        do {
            let written = try await steps(planned, track: track, logger: logger)
            try await attacher.detach(track)
            if written.journalKey != nil, planned.savedVolume?.bootable == true {
                // Before any server boots from it: Nova refuses a boot volume that is not bootable.
                try await attacher.cloud.blockStorage.setBootable(id: written.restored.volumeID, true)
            }
            return written
        } catch {
            for failure in await track.undo(with: attacher) {
                logger.warning("resource not removed yet (retried at the restore's end)", metadata: ["osb-error": "\(failure)"])
            }
            throw BackupError.from(error, resource: "volume \(record.volumeID)")
        }
    }

    private func steps(_ planned: RestorePlan.PlannedVolume, track: WorkflowTrack, logger: Logger) async throws -> WrittenVolume {
        let record = planned.record
        let storage = attacher.cloud.blockStorage
        let saved = planned.savedVolume
        let requestTag = UUID().uuidString.lowercased()
        var metadata = saved?.metadata ?? [:]
        metadata[CloudTags.restoredFrom] = record.volumeID
        metadata[CloudTags.restoredBackup] = record.backupID
        let volumeID: String
        let name: String?
        var journalKey: UInt64?
        if case .inPlace = request.target {
            volumeID = record.volumeID
            name = saved?.name ?? (record.volumeName.isEmpty ? nil : record.volumeName)
            metadata = saved?.metadata ?? [:]
        } else {
            name = request.namePrefix + (saved?.name ?? (record.volumeName.isEmpty ? record.volumeID : record.volumeName))
            let tags = [
                CloudTags.job: "\(jobID)", CloudTags.proxy: request.proxyServerID, CloudTags.sourceVolume: record.volumeID,
                CloudTags.request: requestTag,
            ]
            let key = try attacher.journal.record(
                JournalEntry(kind: .volume, id: nil, requestTag: requestTag, name: name!, sourceVolumeID: record.volumeID))
            track.keys.withLock { $0.append(key) }
            journalKey = key
            let created = try await storage.createVolume(
                VolumeCreateRequest(
                    size: planned.cinderSize, name: name,
                    description: "restored by osbackup from backup \(record.backupID) of volume \(record.volumeID)",
                    volumeType: request.volumeType ?? saved?.volumeType, availabilityZone: request.availabilityZone ?? saved?.availabilityZone,
                    metadata: metadata.merging(tags) { _, tag in tag }))
            try attacher.journal.setID(created.id, for: key)
            _ = try await storage.waitForVolume(id: created.id, statuses: ["available"])
            volumeID = created.id
        }
        let device = try await attacher.attach(
            volumeID: volumeID, name: name ?? volumeID, requestTag: requestTag, sourceVolumeID: record.volumeID, track: track, logger: logger)
        let chain = planned.chain.map(\.files)
        let parallelism = request.parallelism
        // A new volume is deleted if the restore fails, so its blocks are checked as they are written; the
        // original is overwritten only after the whole chain was verified.
        let verifyingFirst = journalKey == nil
        // A cancel (SIGINT, SIGTERM) stops the writing at the next chunk; the volume is then undone.
        let control = ScanControl()
        let result = await withTaskCancellationHandler {
            await BlockingWork.run { () -> Result<ChainApplyResult, BlockDeltaError> in
                do throws(BlockDeltaError) {
                    return .success(
                        try ChainRestorer.overwrite(
                            chain: chain, target: device, configuration: parallelism, control: control,
                            verifyingFirst: verifyingFirst, logger: logger))
                } catch {
                    return .failure(error)
                }
            }
        } onCancel: {
            control.cancel()
        }
        let applied: ChainApplyResult
        switch result {
        case .success(let value): applied = value
        case .failure(let error): throw BackupError.engine(error, resource: "volume \(volumeID) (restore of \(record.volumeID))")
        }
        logger.info("volume written", metadata: ["osb-restored-volume": "\(volumeID)", "osb-backups": "\(applied.backups)"])
        return WrittenVolume(
            planned: planned,
            restored: RestoredCloudVolume(
                originalVolumeID: record.volumeID, volumeID: volumeID, name: name, originalServerID: record.serverID,
                chainLength: planned.chain.count, bytes: applied.volumeSize),
            journalKey: journalKey, finalMetadata: metadata)
    }

    /// Makes a new volume the operator's: the original's metadata without osbackup's tags (then no sweep
    /// touches it), out of the journal. Nothing to do in place.
    func release(_ volume: WrittenVolume) async throws(BackupError) {
        guard let key = volume.journalKey else { return }
        let id = volume.restored.volumeID
        do throws(OpenStackError) {
            try await attacher.cloud.blockStorage.replaceVolumeMetadata(id: id, volume.finalMetadata)
        } catch {
            throw BackupError.cloud(error, resource: "restored volume \(id)")
        }
        do {
            try attacher.journal.remove(key)
        } catch {
            throw BackupError.engine(error, resource: "resource journal")
        }
    }
}
