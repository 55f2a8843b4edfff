public import BackupEngine
public import BlockDelta
public import Logging

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The sink of a backup through Bacula: each file of the namespace goes to the plugin as `FNAME:`/`STAT:`
/// and data packets (docs/bacula-protocol.md), with a leading `/` (Bacula's file names).
///
/// As for a tar stream, a file's size comes before its data: each volume's scan writes spool files in the
/// working directory, and ``commitVolume(_:files:)`` sends `.bmp`, `.bmpsha`, `.bvmdk` in one piece, marked
/// `delta` when they are an Incremental or Differential part (the plugin sets `FO_DELTA`), then deletes
/// them. Whether an Incremental may build on the last backup is asked of Bacula's catalog (`CHECK:`):
/// a delta part whose file has no earlier catalog version would be dropped at restore, so that volume is
/// taken as a Full. ``finish(_:)`` sends `END` and waits for the job's end: the hash maps are installed
/// only when Bacula says the job went well.
public final class BaculaStreamSink: BackupSink {
    private let writer: BackendPacketWriter
    let replies: PluginReplies
    private let spool: BackupRepository
    private let pending: BackupRepository.PendingJob
    private let logger: Logger
    /// Whether a volume that fails fails the job (`abort_on_error=yes`) instead of leaving it "OK -- with warnings".
    let abortOnError: Bool
    /// Bytes per data packet.
    static let chunkSize = 64 << 10

    init(
        writer: BackendPacketWriter, replies: PluginReplies, spoolDirectory: String, jobID: BackupID, abortOnError: Bool = false, logger: Logger
    ) throws(BlockDeltaError) {
        self.writer = writer
        self.abortOnError = abortOnError
        self.replies = replies
        self.logger = logger
        spool = try BackupRepository(directory: spoolDirectory, create: true)
        pending = try spool.beginJob(jobID)
    }

    /// Asks the catalog whether it holds an earlier version of the volume's data file.
    public func isStored(_ id: BackupID, paths: VolumeNamespacePaths) -> Bool {
        do {
            let answer = try writer.exclusively { held -> PluginReplies.CatalogAnswer in
                try held.send(BackendPacket(.command, text: "CHECK:/\(paths.data)"))
                return try replies.nextCheck()
            }
            if case .found = answer { return true }
            logger.notice("no earlier version of the volume in the Bacula catalog", metadata: ["osb-file": "/\(paths.data)"])
            return false
        } catch {
            logger.error("catalog query failed", metadata: ["osb-error": "\(error)"])
            return false
        }
    }

    public func writeFile(_ path: String, contents: [UInt8]) throws(BlockDeltaError) {
        do {
            try writer.exclusively { held in
                try header(path, size: UInt64(contents.count), delta: false, held)
                var offset = 0
                while offset < contents.count {
                    let end = min(offset + Self.chunkSize, contents.count)
                    try held.send(BackendPacket(.data, Array(contents[offset..<end])))
                    offset = end
                }
                try held.send(BackendPacket(.endOfData))
            }
        } catch {
            throw Self.streamError(error, path: path)
        }
    }

    public func beginVolume(_ paths: VolumeNamespacePaths) throws(BlockDeltaError) -> VolumeBackupFiles {
        VolumeBackupFiles(
            regions: try pending.prepare(paths.regions), digests: try pending.prepare(paths.digests), data: try pending.prepare(paths.data))
    }

    public func commitVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) throws(BlockDeltaError) {
        defer { for file in files.all { unlink(file) } }
        // The level from the region list's header alone: the scan has just written and checked these files.
        let delta = try FormatFileReader(path: files.regions, expecting: .regionList).descriptor.level != .full
        let opened = try files.all.map { path throws(BlockDeltaError) in (path, try OpenFile.openForReading(path)) }
        defer { for (_, file) in opened { try? file.close() } }
        let sizes = try opened.map { _, file throws(BlockDeltaError) in try file.size() }
        do {
            try writer.exclusively { held in
                for ((name, (_, file)), size) in zip(zip(paths.all, opened), sizes) {
                    try header(name, size: size, delta: delta, held)
                    var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
                    var offset: UInt64 = 0
                    while offset < size {
                        let count = Int(min(UInt64(Self.chunkSize), size - offset))
                        try buffer.withUnsafeMutableBytes { bytes in
                            try file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count]), at: offset)
                        }
                        try held.send(BackendPacket(.data, Array(buffer[0..<count])))
                        offset += UInt64(count)
                    }
                    try held.send(BackendPacket(.endOfData))
                }
            }
        } catch let error as BlockDeltaError {
            throw error
        } catch {
            throw Self.streamError(error, path: paths.data)
        }
    }

    public func abandonVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) {
        for file in files.all { unlink(file) }
    }

    /// A volume that was not saved: its files are named to the plugin, so that the Accurate backup keeps
    /// their earlier versions instead of marking them deleted.
    public func volumeNotSaved(_ paths: VolumeNamespacePaths) {
        var packets = paths.all.map { BackendPacket(.command, text: "SEEN:/\($0)") }
        if abortOnError {
            // Before END, so that the plugin fails the job and Bacula answers JobEnd:FAILED (no map installed).
            packets.append(BackendPacket(.error, text: "/\(paths.data) was not saved, and abort_on_error=yes fails the job (the reason follows)"))
        }
        try? writer.send(packets)
    }

    /// Sends `END` and waits for Bacula's verdict; throws when the job failed (the maps are then discarded).
    public func finish(_ manifest: BackupJobManifest) throws(BlockDeltaError) {
        spool.abandonJob(pending)
        do {
            try writer.send(BackendPacket(.command, text: "END"))
            guard try replies.waitForJobEnd() else {
                throw BlockDeltaError.failed(
                    path: "Bacula job", "Bacula reports the job as failed: the new hash maps are not installed",
                    hint: "the next backup compares with the last successful one")
            }
        } catch let error as BlockDeltaError {
            throw error
        } catch {
            throw Self.streamError(error, path: "END")
        }
    }

    public func abandon() {
        spool.abandonJob(pending)
    }

    private func header(_ path: String, size: UInt64, delta: Bool, _ held: BackendPacketWriter.Held) throws(BackendProtocolError) {
        try held.send(BackendPacket(.command, text: "FNAME:/\(path)"))
        try held.send(BackendPacket(.command, text: "STAT:\(size) \(Int(Date().timeIntervalSince1970)) \(delta ? "delta" : "full")"))
        try held.send(BackendPacket(.endOfData))
    }

    static func streamError(_ error: any Error, path: String) -> BlockDeltaError {
        .failed(path: path, "cannot send to the Bacula plugin: \(error)", hint: "the File Daemon ended the job; see its log")
    }
}
