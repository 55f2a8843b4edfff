public import BlockDelta
public import Logging
import OpenStackClient

import Foundation

/// What `osbackup backup` is asked to do.
public struct CloudBackupRequest: Sendable {
    /// What to back up.
    public var selection: TargetSelection
    /// The level asked for (per volume, a Full when its map is unusable).
    public var level: BackupLevel
    /// The working directory (maps, locks, journals).
    public var stateDirectory: String
    /// The proxy's Nova server id.
    public var proxyServerID: String
    /// Where attached volumes appear.
    public var devices: DeviceLocator
    /// Volumes attached to the proxy at once (lowered when Nova answers 403 for too many disk devices).
    public var parallel: Int
    /// Threads and chunk sizes of each scan.
    public var parallelism: ParallelIOConfiguration
    /// The block size asked for (nil: keep the maps').
    public var blockSize: Int?
    /// Where the volumes' hash maps and locks are kept, when not in ``stateDirectory``: one folder per
    /// chain that builds on them (the Bacula backend keeps one per Bacula Job, whose catalog holds the chain).
    public var mapDirectory: String?
    /// The cap on the job's read rate over all its volumes (`--bwlimit`), if any.
    public var readRateLimiter: ReadRateLimiter?
    /// When the attached volumes are read with `O_DIRECT` (by default: they are block devices, so yes).
    public var directIO: DirectIOMode
    /// Told after every chunk of every volume how far its scan has come (progress bars).
    public var progress: (@Sendable (VolumeProgress) -> Void)?

    /// Creates a request.
    public init(
        selection: TargetSelection, level: BackupLevel, stateDirectory: String, proxyServerID: String,
        devices: DeviceLocator = .init(), parallel: Int = 4, parallelism: ParallelIOConfiguration = .init(workerCount: 2),
        blockSize: Int? = nil, readRateLimiter: ReadRateLimiter? = nil, directIO: DirectIOMode = .automatic,
        progress: (@Sendable (VolumeProgress) -> Void)? = nil
    ) {
        self.selection = selection
        self.level = level
        self.stateDirectory = stateDirectory
        self.proxyServerID = proxyServerID
        self.devices = devices
        self.parallel = max(1, parallel)
        self.parallelism = parallelism
        self.blockSize = blockSize
        self.readRateLimiter = readRateLimiter
        self.directIO = directIO
        self.progress = progress
    }
}

/// How far the scan of one volume has come.
public struct VolumeProgress: Sendable, Hashable {
    /// The volume UUID.
    public var volumeID: String
    /// Bytes of the source read so far.
    public var bytesDone: UInt64
    /// The source's size, when known.
    public var bytesTotal: UInt64?
}

/// The result of one volume in a job: the summary table's row.
public struct VolumeOutcome: Sendable, Codable, Hashable {
    /// The server (nil: a volume attached to no server).
    public var serverID: String?
    /// The server's name.
    public var serverName: String?
    /// The volume UUID.
    public var volumeID: String
    /// The volume's name.
    public var volumeName: String?
    /// The level taken (nil when it failed before the scan).
    public var level: String?
    /// The volume backup id.
    public var backupID: String?
    /// Bytes read from the device.
    public var bytesRead: UInt64
    /// Bytes of changed block data backed up (uncompressed).
    public var dataBytes: UInt64
    /// Bytes of block data stored (after compression, in a directory repository).
    public var bytesStored: UInt64
    /// Seconds from snapshot to cleanup.
    public var seconds: Double
    /// Where those seconds went: waiting on OpenStack, waiting for an attach slot, scanning.
    public var timings: VolumeTimings
    /// Why a Full was taken instead of the level asked for.
    public var fallbackReason: String?
    /// The error, when it failed.
    public var error: String?
    /// The error's kind, when it failed.
    public var errorKind: BackupError.Kind?

    /// Whether it was saved.
    public var saved: Bool { error == nil }
}

/// What a cloud job did.
public struct CloudBackupReport: Sendable, Codable {
    /// The job id.
    public var jobID: String
    /// One row per volume.
    public var volumes: [VolumeOutcome]
    /// What was skipped, and why.
    public var skipped: [SkippedTarget]
    /// Temporary resources of earlier jobs that this job's start swept.
    public var sweptResources: Int
    /// Resources this job could not remove (they stay in its journal for the next sweep).
    public var leftovers: [String]
    /// The job's wall-clock phases and the volumes' bytes and step times summed.
    public var totals: CloudJobTotals

    /// Whether every volume was saved.
    public var allSaved: Bool { volumes.allSatisfy(\.saved) }
    /// Whether some volumes were saved and others failed.
    public var isPartial: Bool { !allSaved && volumes.contains(where: \.saved) }
}

/// Backs up servers and volumes through the cloud (DESIGN §3): for each volume a snapshot, a temporary
/// volume from it, attached to the proxy, scanned by the engine into the sink, then detached and deleted,
/// every temporary resource journaled before it is created.
public enum CloudBackupJob {
    /// Runs a job. Cancelling the task stops the scans, cleans up, and throws a cancellation.
    public static func run(
        _ request: CloudBackupRequest, cloud: CloudServices, sink: any BackupSink, jobID: BackupID = .generate(),
        logger: Logger
    ) async throws(BackupError) -> CloudBackupReport {
        var logger = logger
        logger[metadataKey: "osb-job"] = "\(jobID)"
        let started = Date()
        let clock = ContinuousClock()
        let startedInstant = clock.now
        let state: VolumeStateStore
        let journal: ResourceJournal
        do {
            state = try VolumeStateStore(directory: request.mapDirectory ?? request.stateDirectory)
        } catch {
            sink.abandon()
            throw BackupError.engine(error, resource: "state directory")
        }
        let sweeper = ResourceSweeper(cloud: cloud, logger: logger)
        let swept = await sweepOrphans(stateDirectory: request.stateDirectory, sweeper: sweeper, logger: logger)
        do {
            journal = try ResourceJournal.create(stateDirectory: request.stateDirectory, jobID: "\(jobID)", proxyServerID: request.proxyServerID)
        } catch {
            sink.abandon()
            throw BackupError.engine(error, resource: "resource journal")
        }

        let targets: ResolvedTargets
        do {
            targets = try await TargetResolver.resolve(request.selection, cloud: cloud, proxyServerID: request.proxyServerID)
        } catch {
            journal.close()
            sink.abandon()
            throw error
        }
        for skipped in targets.skipped {
            logger.notice("skipped", metadata: ["osb-target": "\(skipped.target)", "osb-reason": "\(skipped.reason)"])
        }

        var files: [String] = []
        var work: [(volume: Volume, server: Server?, paths: VolumeNamespacePaths)] = []
        do {
            for target in targets.servers {
                let server = target.server
                let nameFile = BackupNamespace.serverNameFile(serverID: server.id, name: server.name)
                try sink.writeFile(nameFile, contents: Array(server.name.utf8))
                let confFile = BackupNamespace.serverConfFile(serverID: server.id)
                try sink.writeFile(
                    confFile,
                    contents: ServerConfiguration(
                        server: server, volumes: target.volumes, attachments: target.attachments, interfaces: target.interfaces,
                        savedAt: started).encoded())
                files += [nameFile, confFile]
                if let flavor = server.flavor, let name = flavor.originalName ?? flavor.id {
                    let flavorFile = BackupNamespace.flavorFile(name: name)
                    if !files.contains(flavorFile) {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                        try sink.writeFile(flavorFile, contents: Array((try? encoder.encode(flavor)) ?? Data()))
                        files.append(flavorFile)
                    }
                }
                for volume in target.volumes {
                    work.append((volume, server, BackupNamespace.volumeFiles(
                        folder: BackupNamespace.serverFolder(serverID: server.id), volumeID: volume.id, volumeName: volume.name)))
                }
            }
            for volume in targets.unattachedVolumes {
                let nameFile = BackupNamespace.volumeNameFile(volumeID: volume.id, name: volume.name ?? "")
                try sink.writeFile(nameFile, contents: Array((volume.name ?? "").utf8))
                let confFile = BackupNamespace.volumeConfFile(volumeID: volume.id)
                try sink.writeFile(confFile, contents: ServerConfiguration(volume: volume, savedAt: started).encoded())
                files += [nameFile, confFile]
                work.append((volume, nil, BackupNamespace.volumeFiles(
                    folder: BackupNamespace.volumeFolder(volumeID: volume.id), volumeID: volume.id, volumeName: volume.name)))
            }
        } catch {
            journal.close()
            sink.abandon()
            throw BackupError.from(error, resource: "backup stream")
        }

        let volumesStarted = clock.now
        let attacher = ProxyAttacher(
            cloud: cloud, journal: journal, sweeper: sweeper, gate: AttachGate(limit: request.parallel),
            proxyServerID: request.proxyServerID, devices: request.devices, jobID: "\(jobID)")
        let workflow = CloudVolumeWorkflow(attacher: attacher, request: request, state: state, sink: sink, jobID: jobID, logger: logger)
        typealias VolumeResult = (result: Result<ScannedVolume, BackupError>, seconds: Double, timings: VolumeTimings)
        let results = await withTaskGroup(of: (Int, VolumeResult).self) { group in
            var results: [Int: VolumeResult] = [:]
            // Up to `parallel` volume tasks; the attach gate narrows further when Nova says the proxy is full.
            for (index, item) in work.enumerated() {
                if index >= request.parallel, let (done, result) = await group.next() {
                    results[done] = result
                }
                group.addTask {
                    let volumeStarted = ContinuousClock.now
                    let phases = VolumePhaseClock()
                    let result = await workflow.backUp(volume: item.volume, serverID: item.server?.id, paths: item.paths, phases: phases)
                    return (index, (result, (ContinuousClock.now - volumeStarted).inSeconds, phases.timings))
                }
            }
            while let (done, result) = await group.next() {
                results[done] = result
            }
            return results
        }
        let volumesEnded = clock.now

        var outcomes: [VolumeOutcome] = []
        var scanned: [ScannedVolume] = []
        for (index, item) in work.enumerated() {
            guard let (result, seconds, timings) = results[index] else { continue }
            var outcome = VolumeOutcome(
                serverID: item.server?.id, serverName: item.server?.name, volumeID: item.volume.id, volumeName: item.volume.name,
                level: nil, backupID: nil, bytesRead: 0, dataBytes: 0, bytesStored: 0, seconds: seconds, timings: timings, fallbackReason: nil,
                error: nil, errorKind: nil)
            switch result {
            case .success(let volume):
                scanned.append(volume)
                outcome.level = volume.record.level
                outcome.backupID = volume.record.backupID
                outcome.bytesRead = volume.scan.bytesRead
                outcome.dataBytes = volume.record.dataBytes
                outcome.bytesStored = volume.scan.storedBytes
                outcome.fallbackReason = volume.record.fallbackReason
            case .failure(let error):
                sink.volumeNotSaved(item.paths)
                outcome.error = error.description
                outcome.errorKind = error.kind
                logger.error("volume not saved", metadata: ["osb-volume": "\(item.volume.id)", "osb-error": "\(error)"])
            }
            outcomes.append(outcome)
        }

        let leftovers = await withoutCancellation { await sweeper.replay(journal) }
        journal.close()

        if Task.isCancelled {
            for volume in scanned { volume.discardMap(state: state) }
            sink.abandon()
            throw BackupError(.cancelled, resource: "job \(jobID)", "cancelled; temporary resources were removed", hint: nil)
        }
        do throws(BlockDeltaError) {
            try sink.finish(
                BackupJobManifest(
                    jobID: "\(jobID)", kind: "cloud", createdAt: ISO8601DateFormatter().string(from: started),
                    requestedLevel: "\(request.level)", volumes: scanned.map(\.record), files: files))
        } catch {
            for volume in scanned { volume.discardMap(state: state) }
            sink.abandon()
            throw BackupError.engine(error, resource: "backup sink")
        }
        for volume in scanned {
            do throws(BlockDeltaError) {
                try volume.installMap(state: state)
            } catch {
                // The backup is stored; only the next backup's level suffers (a Full, with the reason).
                logger.warning("new hash map not installed", metadata: ["osb-volume": "\(volume.record.volumeID)", "osb-error": "\(error)"])
            }
        }
        let ended = clock.now
        return CloudBackupReport(
            jobID: "\(jobID)", volumes: outcomes, skipped: targets.skipped, sweptResources: swept,
            leftovers: leftovers.map(\.description),
            totals: CloudJobTotals(
                seconds: (ended - startedInstant).inSeconds, preparationSeconds: (volumesStarted - startedInstant).inSeconds,
                volumesSeconds: (volumesEnded - volumesStarted).inSeconds, finishSeconds: (ended - volumesEnded).inSeconds, volumes: outcomes))
    }

    /// Replays the journals of jobs that died on this machine; returns how many resources were undone.
    static func sweepOrphans(stateDirectory: String, sweeper: ResourceSweeper, logger: Logger) async -> Int {
        guard let orphans = try? ResourceJournal.orphans(stateDirectory: stateDirectory) else { return 0 }
        var undone = 0
        for journal in orphans {
            let before = journal.pending.count
            if before > 0 {
                logger.notice("sweeping a dead job's temporary resources", metadata: ["osb-dead-job": "\(journal.jobID)", "osb-count": "\(before)"])
            }
            await sweeper.replay(journal)
            undone += before - journal.pending.count
            journal.close()
        }
        return undone
    }
}

/// Limits the temporary volumes attached to the proxy at once, and lowers the limit when Nova says the
/// proxy has no free disk slot (403), so the job waits for a slot instead of failing.
actor AttachGate {
    private var limit: Int
    private var inUse = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    /// Waits for a slot.
    func acquire() async {
        while inUse >= limit { await withCheckedContinuation { waiters.append($0) } }
        inUse += 1
    }

    /// Frees a slot.
    func release() {
        inUse -= 1
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    /// After a 403 for too many disk devices (the caller has released its slot): the limit becomes the
    /// slots in use. Returns false when none is in use (then waiting cannot help).
    func lowerAfterRefusal() -> Bool {
        guard inUse > 0 else { return false }
        limit = max(1, inUse)
        return true
    }
}

/// The per-volume steps of DESIGN §3 with their journal entries.
struct CloudVolumeWorkflow: Sendable {
    let attacher: ProxyAttacher
    let request: CloudBackupRequest
    let state: VolumeStateStore
    let sink: any BackupSink
    let jobID: BackupID
    let logger: Logger

    /// Backs up one volume; whatever happens, its temporary resources are undone before it returns. Each
    /// step's wall-clock time is added to `phases`.
    ///
    /// The undo starts as soon as the scan has read the device to its end, while the sink takes the
    /// volume's files (a stream copies them then), or when a step fails: the detach and the two deletions
    /// overlap the hand-over instead of following it.
    func backUp(volume: Volume, serverID: String?, paths: VolumeNamespacePaths, phases: VolumePhaseClock) async -> Result<ScannedVolume, BackupError> {
        var logger = logger
        logger[metadataKey: "osb-volume"] = "\(volume.id)"
        let track = WorkflowTrack()
        let readingEnded = OneShotSignal()
        // Cleanup runs to its end even after a cancel: detach, delete the volume, delete the snapshot.
        async let cleanupFailures = Self.cleanUp(track, with: attacher, after: readingEnded, phases: phases)
        let result: Result<ScannedVolume, BackupError>
        do {
            let volumeID = try VolumeID.validated(volume.id)
            result = .success(
                try await steps(
                    volume: volume, volumeID: volumeID, serverID: serverID, paths: paths, track: track, phases: phases,
                    readingEnded: { readingEnded.signal() }, logger: logger))
        } catch {
            result = .failure(BackupError.from(error, resource: "volume \(volume.name.map { "\($0) " } ?? "")(\(volume.id))"))
        }
        readingEnded.signal()
        for failure in await cleanupFailures {
            logger.warning("temporary resource not removed yet (retried at job end)", metadata: ["osb-error": "\(failure)"])
        }
        return result
    }

    /// Undoes the volume's temporary resources once `signal` fires.
    private static func cleanUp(
        _ track: WorkflowTrack, with attacher: ProxyAttacher, after signal: OneShotSignal, phases: VolumePhaseClock
    ) async -> [BackupError] {
        await signal.wait()
        return await phases.time(.cleanup) { await track.undo(with: attacher) }
    }

    private func steps(
        volume: Volume, volumeID: VolumeID, serverID: String?, paths: VolumeNamespacePaths, track: WorkflowTrack, phases: VolumePhaseClock,
        readingEnded: @escaping @Sendable () -> Void, logger: Logger
    ) async throws -> ScannedVolume {
        let cloud = attacher.cloud
        let journal = attacher.journal
        let storage = cloud.blockStorage
        let name = "\(TargetResolver.temporaryPrefix)\(jobID)-\(volume.id)"
        let baseTags = [CloudTags.job: "\(jobID)", CloudTags.proxy: request.proxyServerID, CloudTags.sourceVolume: volume.id]
        let tags = { (requestTag: String) in baseTags.merging([CloudTags.request: requestTag]) { _, new in new } }

        // 1. Snapshot (force only below 3.66: the client decides).
        let snapshotTag = UUID().uuidString.lowercased()
        let snapshotKey = try journal.record(
            JournalEntry(kind: .snapshot, id: nil, requestTag: snapshotTag, name: name, sourceVolumeID: volume.id))
        track.keys.withLock { $0.append(snapshotKey) }
        let snapshot = try await phases.time(.snapshot) {
            let snapshot = try await storage.createSnapshot(
                volumeID: volume.id, name: name, description: "osbackup job \(jobID): temporary, deleted after the backup",
                metadata: tags(snapshotTag))
            try journal.setID(snapshot.id, for: snapshotKey)
            _ = try await storage.waitForSnapshot(id: snapshot.id, statuses: ["available"])
            return snapshot
        }

        // 2. Temporary volume from it, in the caller's (the proxy's) project.
        let volumeTag = UUID().uuidString.lowercased()
        let volumeKey = try journal.record(
            JournalEntry(kind: .volume, id: nil, requestTag: volumeTag, name: name, sourceVolumeID: volume.id))
        track.keys.withLock { $0.append(volumeKey) }
        let temporary = try await phases.time(.temporaryVolume) {
            let temporary = try await storage.createVolume(
                VolumeCreateRequest(
                    size: snapshot.size, name: name, description: "osbackup job \(jobID): temporary, deleted after the backup",
                    snapshotID: snapshot.id, metadata: tags(volumeTag)))
            try journal.setID(temporary.id, for: volumeKey)
            _ = try await storage.waitForVolume(id: temporary.id, statuses: ["available"])
            return temporary
        }

        // 3. Attach to the proxy, within the attach slots (the attacher times the slot wait and the attach).
        let device = try await attacher.attach(
            volumeID: temporary.id, name: name, requestTag: volumeTag, sourceVolumeID: volume.id, track: track, phases: phases, logger: logger)

        // 4.–5. Scan into the sink, at the job's read rate, reporting progress.
        let sourceSize = (try? OpenFile.openForReading(device)).flatMap { file in
            defer { try? file.close() }
            return try? file.size()
        }
        // The reading threads pay for what they read (holes of a sparse source are not read, so not paid).
        let limiter = request.readRateLimiter
        let report = request.progress
        let cinderID = volume.id
        let progress: @Sendable (UInt64) -> Void = { done in
            report?(VolumeProgress(volumeID: cinderID, bytesDone: done, bytesTotal: sourceSize))
        }
        let scanRequest = VolumeScanRequest(
            sourcePath: device, sourceDescription: "cinder:\(volume.id)", volumeID: volumeID, paths: paths,
            level: request.level, blockSize: request.blockSize, directIO: request.directIO, parallelism: request.parallelism,
            cinderSize: volume.size, serverID: serverID)
        do {
            return try await phases.time(.scan) { () async throws(BlockDeltaError) -> ScannedVolume in
                try await VolumeScan.run(
                    scanRequest, backupID: BackupID.generate(), state: state, sink: sink, progress: progress,
                    didRead: { limiter?.consume($0) }, readingEnded: readingEnded, logger: logger)
            }
        } catch {
            throw BackupError.engine(error, resource: "volume \(volume.id)")
        }
    }
}
