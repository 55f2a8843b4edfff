public import Logging

/// What a restore or a verification went through.
public struct ChainApplyResult: Sendable {
    /// Backups of the chain, all opened and checked.
    public var backups: Int = 0
    /// Data blocks read and checked against their digests (a restore reads only the newest version of each
    /// block; a verification every version).
    public var dataBlocks: UInt64 = 0
    /// Bytes of block data read (uncompressed).
    public var dataBytes: UInt64 = 0
    /// Bytes of block data read as stored in the data files (frames, for compressed data).
    public var storedBytes: UInt64 = 0
    /// Blocks that read as zeros: of the restored volume, or for a verification the zero blocks recorded
    /// by all backups.
    public var zeroBlocks: UInt64 = 0
    /// Bytes of block data written to the target.
    public var writtenBytes: UInt64 = 0
    /// Bytes of zero ranges written or zeroed on a target whose old contents are not trusted (none on a new
    /// file, whose zero ranges stay holes).
    public var zeroedBytes: UInt64 = 0
    /// Data blocks of older backups a restore did not read, since a newer backup of the chain holds the block.
    public var supersededBlocks: UInt64 = 0
    /// The volume size at the newest backup.
    public var volumeSize: UInt64 = 0

    /// Creates an empty result.
    public init() {}

    /// Adds the block and byte counts of `other` (one chunk's work).
    mutating func add(_ other: ChainApplyResult) {
        dataBlocks += other.dataBlocks
        dataBytes += other.dataBytes
        storedBytes += other.storedBytes
        writtenBytes += other.writtenBytes
        zeroedBytes += other.zeroedBytes
    }
}

/// Restores a chain of backups (a Full, then each backup that builds on it, oldest first) onto a regular
/// file or a block device, or verifies it without writing.
///
/// A restore first merges the chain's region lists into its index (``ChainIndex``: for each block, the
/// backup that holds its newest version, or zeros), without reading data. Then every stored block it needs
/// is read once, checked against its `.bmpsha` digest (after it is decompressed, for framed data), and
/// written at its offset, by several workers at once (`ChainPass`), with `O_DIRECT` where the target
/// allows it (`RestoreTarget`); blocks that a newer backup replaced are never read. Files are written
/// sparse: zero ranges stay holes. One `fsync` ends the restore.
public enum ChainRestorer {
    /// Opens and checks the frames of every backup of `chain` and that they form a chain: the first is a
    /// Full, each next one's parent is the one before, all share one volume, block size and Full.
    public static func open(chain: [VolumeBackupFiles]) throws(BlockDeltaError) -> [VolumeBackupReader] {
        guard let first = chain.first else { throw .invalidArgument("an empty chain has nothing to restore") }
        var readers: [VolumeBackupReader] = []
        for files in chain {
            let reader = try VolumeBackupReader(files: files)
            let descriptor = reader.descriptor
            if let previous = readers.last?.descriptor {
                guard descriptor.parentID == previous.backupID else {
                    throw .mismatchedChain(
                        path: files.regions,
                        "backup \(descriptor.backupID) builds on \(descriptor.parentID.map { "\($0)" } ?? "nothing"), not on \(previous.backupID)")
                }
                guard descriptor.volumeID == previous.volumeID, descriptor.fullID == previous.fullID,
                    descriptor.geometry.blockSize == previous.geometry.blockSize,
                    descriptor.geometry.volumeSize >= previous.geometry.volumeSize
                else {
                    throw .mismatchedChain(path: files.regions, "volume, Full or block size differ from the backup before it")
                }
            } else if descriptor.level != .full {
                throw .mismatchedChain(path: first.regions, "a chain must start with a Full backup, this is \(descriptor.level)")
            }
            readers.append(reader)
        }
        return readers
    }

    /// Reads every block of every backup of the chain, superseded versions included, and checks it against
    /// its digest, writing nothing: an integrity check of the repository, not only of what a restore reads.
    public static func verify(
        chain: [VolumeBackupFiles], configuration: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let readers = try open(chain: chain)
        return try ChainPass(readers: readers, target: nil, configuration: configuration, control: nil)
            .run(extents: { ChainRegionsCursor(readers: readers) }, checkFramesEnd: true)
    }

    /// Restores the chain onto `target`.
    ///
    /// A regular file (or a path that does not exist) is written as `<target>.osbackup-partial`, made
    /// sparse, synced and renamed over `target` only when every block was verified and written, so a failed
    /// restore leaves `target` untouched. Each block is checked as it is read, in the same pass that writes
    /// it: a damaged block only costs the partial file. A damaged block that a newer backup of the chain
    /// replaced is not read, so it does not fail the restore (``verify(chain:configuration:)`` reports it).
    /// A block device must hold the volume (else nothing is written) and is restored by
    /// ``overwrite(chain:target:configuration:control:logger:)``. `control` stops the work at the next
    /// chunk when cancelled (a file restore then leaves nothing behind); its progress hears the bytes of
    /// block data checked so far.
    public static func restore(
        chain: [VolumeBackupFiles], to target: String, configuration: ParallelIOConfiguration = .init(),
        control: ScanControl? = nil, logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let readers = try open(chain: chain)
        let volumeSize = readers.last!.descriptor.geometry.volumeSize
        let existing = try? OpenFile.openForReading(target)
        if let existing, try existing.isBlockDevice() {
            return try overwrite(readers, target: target, configuration: configuration, control: control, logger: logger)
        }
        if let existing {
            _ = try existing.size()  // refuses a directory or anything else that is not a file or device
        }
        let partial = target + ".osbackup-partial"
        let created = try OpenFile.openForWriting(partial, create: true, truncate: true)
        do throws(BlockDeltaError) {
            try created.truncate(to: volumeSize)
            try created.close()
        } catch {
            try? created.close()
            unlink(partial)
            throw error
        }
        do throws(BlockDeltaError) {
            let output = try RestoreTarget(path: partial, isBlockDevice: false, writesZeroExtents: false, logger: logger)
            do throws(BlockDeltaError) {
                let result = try write(readers, to: output, configuration: configuration, control: control)
                try output.syncAndClose()
                guard rename(partial, target) == 0 else { throw .io("rename to \(target)", path: partial, errno: errno) }
                try syncDirectory(parentDirectory(of: target))
                return result
            } catch {
                output.abandon()
                throw error
            }
        } catch {
            unlink(partial)
            throw error
        }
    }

    /// Restores the chain in place onto an existing block device or file that already holds a volume
    /// of at least the chain's size (a Cinder volume attached to the proxy, which may show up as a link
    /// to a file): every block the restore needs is verified before the first byte is overwritten (the
    /// newest version of each block, read and checked in parallel), then every block of the volume is
    /// written, zero ranges included (zeroed with `BLKZEROOUT` on a device, punched on a file: both read
    /// back as zeros; the target's old contents are never trusted), and the target is synced once. Bytes
    /// past the chain's volume size are left as they are.
    ///
    /// `control` stops the work at the next chunk when cancelled (the target then holds part of the
    /// chain: a new volume is deleted by its caller, an existing one must be restored again).
    ///
    /// Without `verifyingFirst`, the blocks are checked in the same pass that writes them, which reads and
    /// hashes each block once instead of twice: only for a target whose contents do not matter when the
    /// restore fails (a new volume its caller deletes then), since a damaged block stops the restore with
    /// part of the chain written.
    public static func overwrite(
        chain: [VolumeBackupFiles], target: String, configuration: ParallelIOConfiguration = .init(), control: ScanControl? = nil,
        verifyingFirst: Bool = true, logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        try overwrite(
            open(chain: chain), target: target, configuration: configuration, control: control, verifyingFirst: verifyingFirst,
            logger: logger)
    }

    private static func overwrite(
        _ readers: [VolumeBackupReader], target: String, configuration: ParallelIOConfiguration, control: ScanControl? = nil,
        verifyingFirst: Bool = true, logger: Logger
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let volumeSize = readers.last!.descriptor.geometry.volumeSize
        let existing = try OpenFile.openForReading(target)
        let isBlockDevice = try existing.isBlockDevice()
        let size = try existing.size()
        try existing.close()
        guard size >= volumeSize else {
            throw .targetTooSmall(path: target, targetSize: size, volumeSize: volumeSize)
        }
        if verifyingFirst {
            logger.info("verifying the chain before overwriting the target", metadata: ["osb-target": "\(target)"])
            _ = try write(readers, to: nil, configuration: configuration, control: control)
        }
        let output = try RestoreTarget(path: target, isBlockDevice: isBlockDevice, writesZeroExtents: true, logger: logger)
        do throws(BlockDeltaError) {
            let result = try write(readers, to: output, configuration: configuration, control: control)
            try output.syncAndClose()
            return result
        } catch {
            output.abandon()
            throw error
        }
    }

    /// Reads and checks the newest version of every block of the chain, and writes it to `target` when
    /// there is one (without syncing).
    private static func write(
        _ readers: [VolumeBackupReader], to target: RestoreTarget?, configuration: ParallelIOConfiguration, control: ScanControl?
    ) throws(BlockDeltaError) -> ChainApplyResult {
        let index = ChainIndex(readers: readers)
        var result = try ChainPass(readers: readers, target: target, configuration: configuration, control: control)
            .run(extents: { () throws(BlockDeltaError) -> any ChainExtentSource in try index.makeCursor() })
        result.supersededBlocks = readers.reduce(0) { $0 + $1.summary.dataBlocks } - result.dataBlocks
        return result
    }
}

/// The directory part of `path` ("." for a bare name).
func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let parent = String(path[..<slash])
    return parent.isEmpty ? "/" : parent
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
