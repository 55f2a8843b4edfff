public import BlockDelta
public import Logging

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sink of `osbackup backup --to -`: the job's namespace as one pax tar stream (UTF-8 paths without a
/// leading `/`, the same paths as below a job folder of a directory repository; no manifest: a restore
/// rebuilds it with ``JobManifestReconstruction``).
///
/// A tar header needs the size of its file before the data, and a volume's three files are only complete
/// when its scan ends: each scan writes into spool files in the working directory
/// (`<spool directory>/<job id>.partial/<namespace path>`), and ``commitVolume(_:files:)`` copies them
/// into the stream, `.bmp`, `.bmpsha`, `.bvmdk`, then deletes them. Volumes scan in parallel; their
/// commits, and the small files, go into the stream one at a time. The spool folder is a
/// ``BackupRepository`` partial job folder, so the spool of a job that died is removed by the next one.
///
/// The stream is written straight to the descriptor (no buffering beyond libarchive's 64 KiB block).
/// A failed write (a closed pipe: `EPIPE`, with SIGPIPE ignored by the caller) fails the sink for good;
/// ``abandon()`` on a healthy stream ends it with ``failureMarker``, which a restore refuses (a tar cut
/// at an entry boundary would read as complete), else without its end-of-archive records.
public final class TarSink: BackupSink {
    /// The last entry of the stream of a job that failed or was cancelled: a restore refuses the stream.
    public static let failureMarker = "\(BackupNamespace.root)/JOB-FAILED.txt"

    /// The output's name in errors and logs ("standard output" or a path).
    public let outputName: String
    private let jobID: BackupID
    private let logger: Logger
    private let spool: BackupRepository
    private let pending: BackupRepository.PendingJob
    private let state: Mutex<State>

    private final class State {
        var writer: TarWriter?
        /// The first write error: every later call fails with it.
        var failure: BlockDeltaError?
        /// The descriptor to close at the end (nil: the caller's, such as standard output).
        var ownedDescriptor: Int32?
        let descriptor: Int32

        init(writer: TarWriter, descriptor: Int32, owned: Bool) {
            self.writer = writer
            self.descriptor = descriptor
            ownedDescriptor = owned ? descriptor : nil
        }
    }

    /// Streams job `jobID` to `descriptor` (left open: standard output is the caller's), spooling volume
    /// data below `spoolDirectory` (created if missing).
    public convenience init(
        descriptor: Int32, outputName: String, spoolDirectory: String, jobID: BackupID, logger: Logger
    ) throws(BlockDeltaError) {
        try self.init(
            descriptor: descriptor, owned: false, outputName: outputName, spoolDirectory: spoolDirectory, jobID: jobID, logger: logger)
    }

    /// Streams job `jobID` into a new tar file at `path` (created or truncated, closed at the end).
    public convenience init(path: String, spoolDirectory: String, jobID: BackupID, logger: Logger) throws(BlockDeltaError) {
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard file >= 0 else { throw .io("create the tar file", path: path, errno: errno) }
        do {
            try self.init(descriptor: file, owned: true, outputName: path, spoolDirectory: spoolDirectory, jobID: jobID, logger: logger)
        } catch {
            Glibc.close(file)
            throw error
        }
    }

    private init(
        descriptor: Int32, owned: Bool, outputName: String, spoolDirectory: String, jobID: BackupID, logger: Logger
    ) throws(BlockDeltaError) {
        self.outputName = outputName
        self.jobID = jobID
        self.logger = logger
        spool = try BackupRepository(directory: spoolDirectory, create: true)
        pending = try spool.beginJob(jobID)
        do {
            state = Mutex(State(writer: try TarWriter(descriptor: descriptor, outputName: outputName, jobID: "\(jobID)"), descriptor: descriptor, owned: owned))
        } catch {
            spool.abandonJob(pending)
            throw error
        }
    }

    /// Always true: a stream cannot know what the reader keeps, and its chain is kept by whoever keeps the
    /// streams (the restore takes them in chain order).
    public func isStored(_ id: BackupID, paths: VolumeNamespacePaths) -> Bool { true }

    public func writeFile(_ path: String, contents: [UInt8]) throws(BlockDeltaError) {
        try write { writer throws(BlockDeltaError) in try writer.append(path, bytes: contents) }
    }

    public func beginVolume(_ paths: VolumeNamespacePaths) throws(BlockDeltaError) -> VolumeBackupFiles {
        VolumeBackupFiles(
            regions: try pending.prepare(paths.regions), digests: try pending.prepare(paths.digests),
            data: try pending.prepare(paths.data))
    }

    public func commitVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) throws(BlockDeltaError) {
        defer { for file in files.all { unlink(file) } }
        var bytes: UInt64 = 0
        var started = Date()
        try write { writer throws(BlockDeltaError) in
            // The wait for the lock (another volume's copy) is not part of this volume's copy time.
            started = Date()
            for (name, file) in zip(paths.all, files.all) { bytes += try writer.append(name, copying: file) }
        }
        let seconds = Date().timeIntervalSince(started)
        logger.info(
            "volume copied from the spool into the tar stream",
            metadata: [
                "osb-file": "\(paths.data)", "osb-bytes": "\(bytes)", "osb-seconds": "\(String(format: "%.2f", seconds))",
                "osb-mbps": "\(String(format: "%.0f", Double(bytes) / max(seconds, 0.001) / 1e6))",
            ])
    }

    public func abandonVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) {
        for file in files.all { unlink(file) }
    }

    /// Writes the end of the stream and syncs it when it is a file; removes the spool folder.
    public func finish(_ manifest: BackupJobManifest) throws(BlockDeltaError) {
        try state.withLock { state throws(BlockDeltaError) in
            if let failure = state.failure { throw failure }
            guard let writer = state.writer else { throw .failed(path: outputName, "the tar stream was already closed") }
            state.writer = nil
            do throws(BlockDeltaError) {
                try writer.close()
            } catch {
                state.failure = error
                throw error
            }
            // A pipe or a terminal cannot be synced (EINVAL); a file can, and must be before we return.
            if fsync(state.descriptor) != 0, errno != EINVAL, errno != EROFS {
                let error = BlockDeltaError.io("fsync", path: outputName, errno: errno)
                state.failure = error
                throw error
            }
            if let owned = state.ownedDescriptor {
                state.ownedDescriptor = nil
                if Glibc.close(owned) != 0 {
                    let error = BlockDeltaError.io("close", path: outputName, errno: errno)
                    state.failure = error
                    throw error
                }
            }
        }
        spool.abandonJob(pending)
    }

    /// Ends a healthy stream with ``failureMarker`` (else without its end-of-archive records) and removes the
    /// spool folder.
    public func abandon() {
        let note = "osbackup job \(jobID) failed or was cancelled: this stream is incomplete; do not restore from it.\n"
        state.withLock { state in
            if state.failure == nil, let writer = state.writer {
                do throws(BlockDeltaError) {
                    try writer.append(Self.failureMarker, bytes: Array(note.utf8))
                    try writer.close()
                } catch {
                    writer.fail()
                }
            }
            state.writer?.fail()
            state.writer = nil
            if let owned = state.ownedDescriptor { Glibc.close(owned) }
            state.ownedDescriptor = nil
        }
        spool.abandonJob(pending)
    }

    /// Runs `body` on the writer under the lock; its first error fails the sink.
    private func write(_ body: (TarWriter) throws(BlockDeltaError) -> Void) throws(BlockDeltaError) {
        try state.withLock { state throws(BlockDeltaError) in
            if let failure = state.failure { throw failure }
            guard let writer = state.writer else { throw .failed(path: outputName, "the tar stream was already closed") }
            do throws(BlockDeltaError) {
                try body(writer)
            } catch {
                state.failure = error
                throw error
            }
        }
    }
}
