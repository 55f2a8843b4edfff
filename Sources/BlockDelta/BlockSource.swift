public import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When a source is read with `O_DIRECT`, bypassing the page cache.
public enum DirectIOMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// On block devices, so that a Full of a large volume does not evict the proxy's page cache; files
    /// (raw images, the emulator's volumes) are read through the cache.
    case automatic
    /// On every source that accepts it.
    case always
    /// Never: every read goes through the page cache.
    case never

    public var description: String { rawValue }

    /// Whether a source of this kind is opened with `O_DIRECT`.
    func appliesTo(blockDevice: Bool) -> Bool {
        switch self {
        case .automatic: blockDevice
        case .always: true
        case .never: false
        }
    }
}

/// The volume being backed up: a regular file (a raw image) or a block device, read with `pread`.
///
/// Block devices are read with `O_DIRECT` by default (``DirectIOMode/automatic``); where the device or
/// file system refuses it, at open or at the first read, the source falls back to cached reads and says so
/// in a debug line (a warning when `O_DIRECT` was asked for explicitly). Regular files whose file system
/// reports holes (`SEEK_DATA`/`SEEK_HOLE`: ext4, XFS, btrfs, tmpfs, NFS 4.2) are scanned hole-aware:
/// see ``findsHoles``. Block devices report none, including loop devices over sparse files.
public struct BlockSource: Sendable {
    /// The path it was opened by.
    public let path: String
    /// The open file.
    public let file: OpenFile
    /// The size in bytes (`BLKGETSIZE64` for a device).
    public let size: UInt64
    /// Whether it is a block device.
    public let isBlockDevice: Bool
    /// Whether reads bypass the page cache (`O_DIRECT`).
    public let usesDirectIO: Bool
    /// Whether the source's holes are found with `SEEK_DATA`/`SEEK_HOLE` and taken as zeros without being
    /// read: a regular file on a file system that answers those seeks (elsewhere the kernel reports the
    /// whole file as data, which is also correct, only slower).
    public let findsHoles: Bool

    /// The alignment of buffers, offsets and lengths that `O_DIRECT` needs.
    public static let directIOAlignment = 4096

    /// Opens `path`. `directIO` says when to bypass the page cache (``DirectIOMode/automatic``: on block
    /// devices); `skipsHoles` lets a sparse file's holes be found rather than read.
    public init(
        path: String, directIO: DirectIOMode = .automatic, skipsHoles: Bool = true, logger: Logger
    ) throws(BlockDeltaError) {
        self.path = path
        var opened = try OpenFile.openForReading(path)
        isBlockDevice = try opened.isBlockDevice()
        size = try opened.size()
        var direct = false
        if directIO.appliesTo(blockDevice: isBlockDevice) {
            switch Self.openDirect(path, size: size) {
            case .success(let directFile):
                try opened.close()
                opened = directFile
                direct = true
            case .failure(let error):
                let metadata: Logger.Metadata = ["osb-source": "\(path)", "osb-error": "\(error)"]
                if directIO == .always {
                    logger.warning("O_DIRECT refused; reading through the page cache", metadata: metadata)
                } else {
                    logger.debug("O_DIRECT refused; reading through the page cache", metadata: metadata)
                }
            }
        }
        file = opened
        usesDirectIO = direct
        findsHoles = skipsHoles && !isBlockDevice && Self.answersHoleSeeks(opened)
        if !direct { opened.adviseSequentialRead() }
    }

    /// Opens `path` with `O_DIRECT` and reads its first bytes, which some file systems and devices refuse
    /// only then (`EINVAL`).
    private static func openDirect(_ path: String, size: UInt64) -> Result<OpenFile, BlockDeltaError> {
        Result { () throws(BlockDeltaError) -> OpenFile in
            let file = try OpenFile.openForReading(path, direct: true)
            guard size > 0 else { return file }
            let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: directIOAlignment, alignment: directIOAlignment)
            defer { probe.deallocate() }
            do throws(BlockDeltaError) {
                _ = try file.read(into: probe, at: 0)
            } catch {
                try? file.close()
                throw error
            }
            return file
        }
    }

    /// Whether the file system answers `SEEK_DATA` (ENXIO, "only holes from here", counts as an answer).
    private static func answersHoleSeeks(_ file: OpenFile) -> Bool {
        do {
            _ = try file.nextData(from: 0)
            return true
        } catch {
            return false
        }
    }

    /// Reads exactly `length` bytes at `offset` into `buffer`, which must be aligned and large enough for the
    /// length rounded up to ``directIOAlignment``.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, length: Int) throws(BlockDeltaError) {
        let requested = usesDirectIO ? (length + Self.directIOAlignment - 1) / Self.directIOAlignment * Self.directIOAlignment : length
        precondition(requested <= buffer.count)
        let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<requested]), at: offset)
        guard count >= length else {
            throw .failed(
                path: path, "read of \(length) bytes at byte \(offset) returned \(count)",
                hint: "the source shrank while it was read; take the backup again")
        }
    }
}

/// Where a sparse regular file holds data, asked of the file system with `SEEK_DATA` and `SEEK_HOLE`, so
/// that a scan reads the data and takes every hole as zeros without reading it (holes read as zeros, so
/// the result is the same as reading them).
///
/// It remembers the last hole and the last data extent it was told of: a worker that asks about its chunks
/// in increasing order makes system calls only where an extent begins or ends. One per worker thread.
final class DataExtentFinder {
    private let file: OpenFile
    /// A range known to be a hole.
    private var knownHole: Range<UInt64> = 0..<0
    /// A range known to hold data.
    private var knownData: Range<UInt64> = 0..<0

    init(file: OpenFile) { self.file = file }

    /// The parts of `range` that hold data, in order, merged where they touch; the rest is holes.
    func dataRanges(in range: Range<UInt64>) throws(BlockDeltaError) -> [Range<UInt64>] {
        var ranges: [Range<UInt64>] = []
        var position = range.lowerBound
        while position < range.upperBound {
            if knownData.contains(position) {
                let end = min(knownData.upperBound, range.upperBound)
                if let last = ranges.last, last.upperBound == position {
                    ranges[ranges.count - 1] = last.lowerBound..<end
                } else {
                    ranges.append(position..<end)
                }
                position = end
            } else if knownHole.contains(position) {
                position = min(knownHole.upperBound, range.upperBound)
            } else if let data = try file.nextData(from: position) {
                if data > position {
                    knownHole = position..<data
                } else {
                    // A hole that does not lie after the data (the file changed between the two calls) is
                    // read to the end of the range: reading is always right.
                    let hole = try file.nextHole(from: data)
                    knownData = data..<(hole > data ? hole : range.upperBound)
                }
            } else {
                // Only holes up to the end of the file.
                knownHole = position..<UInt64.max
            }
        }
        return ranges
    }
}
