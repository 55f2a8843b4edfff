public import BlockDelta
public import Logging

import CLinuxIO
import Foundation

/// One volume to scan into a sink: the device or file to read and how to file it.
public struct VolumeScanRequest: Sendable {
    /// The device or file to read.
    public var sourcePath: String
    /// What the backup records as its source (a path, or `cinder:<volume uuid>`).
    public var sourceDescription: String
    /// The volume's id (keys its maps and its lock).
    public var volumeID: VolumeID
    /// The namespace paths of its three files.
    public var paths: VolumeNamespacePaths
    /// The level asked for.
    public var level: BackupLevel
    /// The block size asked for (nil: keep the maps', else the default).
    public var blockSize: Int?
    /// When to read with `O_DIRECT` (by default on block devices).
    public var directIO: DirectIOMode
    /// Threads and chunk sizes.
    public var parallelism: ParallelIOConfiguration
    /// Cinder's size in GiB, recorded for restores.
    public var cinderSize: Int?
    /// The server the volume belongs to.
    public var serverID: String?

    /// Creates a request.
    public init(
        sourcePath: String, sourceDescription: String, volumeID: VolumeID, paths: VolumeNamespacePaths,
        level: BackupLevel, blockSize: Int? = nil, directIO: DirectIOMode = .automatic, parallelism: ParallelIOConfiguration = .init(),
        cinderSize: Int? = nil, serverID: String? = nil
    ) {
        self.sourcePath = sourcePath
        self.sourceDescription = sourceDescription
        self.volumeID = volumeID
        self.paths = paths
        self.level = level
        self.blockSize = blockSize
        self.directIO = directIO
        self.parallelism = parallelism
        self.cinderSize = cinderSize
        self.serverID = serverID
    }
}

/// A volume scanned into its sink whose new map is not installed yet.
///
/// It holds the volume's lock until ``installMap(state:)`` (after the sink's ``BackupSink/finish(_:)``)
/// or ``discardMap(state:)``: no other backup of the volume can run between the scan and the map commit.
public final class ScannedVolume: Sendable {
    /// What was stored.
    public let record: VolumeBackupRecord
    /// The scan's totals.
    public let scan: DeltaScanResult
    /// Wall-clock seconds of the scan.
    public let seconds: Double
    private let lock: FileLock
    private let level: BackupLevel

    init(record: VolumeBackupRecord, scan: DeltaScanResult, seconds: Double, lock: FileLock, level: BackupLevel) {
        self.record = record
        self.scan = scan
        self.seconds = seconds
        self.lock = lock
        self.level = level
    }

    /// Installs the new map (the second commit) and releases the volume's lock.
    public func installMap(state: VolumeStateStore) throws(BlockDeltaError) {
        defer { lock.release() }
        try state.installPendingMap(volumeID: record.volumeID, level: level)
    }

    /// Drops the new map (the job failed after the scan) and releases the volume's lock.
    public func discardMap(state: VolumeStateStore) {
        state.discardPendingMap(volumeID: record.volumeID)
        lock.release()
    }
}

/// The engine's step shared by image jobs, cloud jobs and the Bacula backend: lock the volume, plan its
/// level from the working dir, scan it into the sink, and leave the map commit to the job.
public enum VolumeScan {
    /// Scans one volume (blocking: the calling thread waits while worker threads read and hash).
    ///
    /// `readingEnded` is called once the source has been read to its end and closed, before the sink takes
    /// the volume's files: a cloud job detaches and deletes its temporary volume from then on, while a
    /// stream sink copies the files. It is not called when the read fails; when the hand-over fails after
    /// it, the volume fails as well (its temporary resources are already going).
    public static func run(
        _ request: VolumeScanRequest, backupID: BackupID, state: VolumeStateStore, sink: any BackupSink,
        control: ScanControl? = nil, readingEnded: @Sendable () -> Void = {}, logger: Logger
    ) throws(BlockDeltaError) -> ScannedVolume {
        if let blockSize = request.blockSize { _ = try VolumeGeometry(blockSize: blockSize, volumeSize: 0) }
        let volumeID = request.volumeID.rawValue
        var logger = logger
        logger[metadataKey: "osb-volume"] = "\(volumeID)"
        guard let volumeLock = try FileLock.tryAcquire(state.lockPath(volumeID: volumeID)) else {
            throw .busy(
                path: state.lockPath(volumeID: volumeID), "another backup of volume \(volumeID) is running",
                hint: "wait for it to finish; the lock goes away with its process")
        }
        let source: BlockSource
        do {
            source = try BlockSource(path: request.sourcePath, directIO: request.directIO, logger: logger)
        } catch {
            volumeLock.release()
            throw error
        }
        let plan = LevelPlanner.plan(
            volumeID: volumeID, volumeSize: source.size, requested: request.level, requestedBlockSize: request.blockSize,
            state: state, isStored: { sink.isStored($0, paths: request.paths) }, logger: logger)
        let descriptor: BackupDescriptor
        let files: VolumeBackupFiles
        do {
            descriptor = try BackupDescriptor(
                geometry: VolumeGeometry(blockSize: plan.blockSize, volumeSize: source.size), backupID: backupID,
                parentID: plan.parentID, fullID: plan.fullID(for: backupID), level: plan.level, volumeID: volumeID)
            files = try sink.beginVolume(request.paths)
        } catch {
            volumeLock.release()
            throw error
        }
        logger[metadataKey: "osb-backup"] = "\(backupID)"
        logger.info("volume scan started", metadata: ["osb-level": "\(plan.level)", "osb-geometry": "\(descriptor.geometry)"])
        let started = Date()
        do throws(BlockDeltaError) {
            let scan = try DeltaScanner.scan(
                source: source, descriptor: descriptor, reference: plan.reference, files: files,
                dataEncoding: sink.dataEncoding, newMapPath: state.pendingMapPath(volumeID: volumeID), configuration: request.parallelism, control: control,
                logger: logger)
            // The source is not read again: close it so that its device can go while the files are handed over.
            try? source.file.close()
            readingEnded()
            try sink.commitVolume(request.paths, files: files)
            let seconds = Date().timeIntervalSince(started)
            let record = VolumeBackupRecord(
                backupID: "\(backupID)", parentID: plan.parentID.map { "\($0)" }, fullID: "\(descriptor.fullID)",
                level: "\(plan.level)", fallbackReason: plan.fallbackReason,
                createdAt: ISO8601DateFormatter().string(from: started), source: request.sourceDescription, volumeID: volumeID,
                volumeName: request.paths.volumeLabel, volumeSize: source.size, cinderSize: request.cinderSize,
                serverID: request.serverID, blockSize: plan.blockSize, regionsFile: request.paths.regions,
                digestsFile: request.paths.digests, dataFile: request.paths.data, regions: scan.summary.regionCount,
                dataBlocks: scan.summary.dataBlocks, zeroBlocks: scan.summary.zeroBlocks, dataBytes: scan.summary.dataBytes,
                storedBytes: scan.storedBytes)
            logger.info(
                "volume scanned",
                metadata: [
                    "osb-data-bytes": "\(scan.summary.dataBytes)", "osb-stored-bytes": "\(scan.storedBytes)",
                    "osb-regions": "\(scan.summary.regionCount)",
                    "osb-seconds": "\(String(format: "%.2f", seconds))",
                ])
            return ScannedVolume(record: record, scan: scan, seconds: seconds, lock: volumeLock, level: plan.level)
        } catch {
            sink.abandonVolume(request.paths, files: files)
            state.discardPendingMap(volumeID: volumeID)
            volumeLock.release()
            throw error
        }
    }

    /// Scans one volume from async code: the blocking scan runs on its own thread, off the cooperative
    /// pool; cancelling the task stops the scan at its next chunk (the error is then a cancellation).
    /// `progress` hears the source bytes done after each chunk; `didRead` is called on the reading threads
    /// with the bytes each read took (see ``ScanControl``); `readingEnded` as in the blocking form.
    public static func run(
        _ request: VolumeScanRequest, backupID: BackupID, state: VolumeStateStore, sink: any BackupSink,
        progress: @escaping @Sendable (UInt64) -> Void = { _ in }, didRead: @escaping @Sendable (UInt64) -> Void = { _ in },
        readingEnded: @escaping @Sendable () -> Void = {}, logger: Logger
    ) async throws(BlockDeltaError) -> ScannedVolume {
        let control = ScanControl(progress: progress, didRead: didRead)
        let result: Result<ScannedVolume, BlockDeltaError> = await withTaskCancellationHandler {
            await BlockingWork.run {
                Result { () throws(BlockDeltaError) -> ScannedVolume in
                    try run(
                        request, backupID: backupID, state: state, sink: sink, control: control, readingEnded: readingEnded,
                        logger: logger)
                }
            }
        } onCancel: {
            control.cancel()
        }
        return try result.get()
    }
}

/// Blocking work (file and device I/O, external commands) run on a thread of its own, so it never holds
/// a thread of Swift's cooperative pool.
public enum BlockingWork {
    /// Runs `body` on a new thread (named `osb-work`, at the job's ``ProcessPriority``) and waits for it
    /// without blocking the caller's thread.
    public static func run<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                osb_set_thread_name("osb-work")
                // The scan's reader and workers are started from here and inherit what this thread runs at.
                ProcessPriority.current?.applyToCurrentThread()
                continuation.resume(returning: body())
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}
