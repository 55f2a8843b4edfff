public import BlockDelta
import CArchive

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tar stream to read: a file, or a descriptor such as standard input.
public struct TarInput: Sendable, Hashable {
    /// The file's path, or the name of the descriptor ("standard input").
    public var name: String
    /// The descriptor to read (nil: open ``name`` as a file).
    public var descriptor: Int32?

    /// A tar file (compressed or not).
    public static func file(_ path: String) -> TarInput { TarInput(name: path, descriptor: nil) }
    /// The tar stream on standard input.
    public static let standardInput = TarInput(name: "standard input", descriptor: STDIN_FILENO)
}

/// Extracts a backup tar stream into a folder, trusting nothing in it: only regular files and folders of
/// the backup namespace (`@openstack/…`, `@local/…`, relative, without `.` or `..` components, a leading
/// `./` allowed) are written, each file created new below the folder. An absolute path, a `..`, a path
/// outside the namespace, a symbolic or hard link, a device or FIFO entry, or a file given twice stops
/// the extraction with an error naming the entry (the caller removes the folder). Compressed streams
/// (zstd, gzip, xz, bzip2, lz4) are read through libarchive's filters.
public enum TarExtraction {
    /// What one stream held.
    public struct Summary: Sendable, Hashable {
        /// Regular files written.
        public var files = 0
        /// Bytes of file data written.
        public var bytes: UInt64 = 0
        /// The job id the entries carry (``TarWriter/jobAttribute``), when they agree on one.
        public var jobID: String?
    }

    /// The first components a backup namespace path may start with.
    static let namespaceRoots: Set<Substring> = ["@openstack", "@local"]

    /// Extracts `input` into `folder` (which must exist).
    public static func extract(_ input: TarInput, into folder: String) throws(BlockDeltaError) -> Summary {
        try ArchiveSupport.withUTF8Locale { () throws(BlockDeltaError) -> Summary in
            guard let archive = archive_read_new() else {
                throw .failed(path: input.name, "libarchive cannot allocate a tar reader (out of memory)")
            }
            defer { archive_read_free(archive) }
            guard archive_read_support_filter_all(archive) == ARCHIVE_OK, archive_read_support_format_tar(archive) == ARCHIVE_OK else {
                throw ArchiveSupport.error(archive, "set up the tar reader", path: input.name)
            }
            let blockSize = 1 << 20
            let opened = if let descriptor = input.descriptor {
                archive_read_open_fd(archive, descriptor, blockSize)
            } else {
                archive_read_open_filename(archive, input.name, blockSize)
            }
            guard opened == ARCHIVE_OK else {
                throw ArchiveSupport.error(
                    archive, "open the tar stream", path: input.name,
                    hint: "give a tar written by `osbackup backup --to -` (it may be compressed with zstd, gzip or xz)")
            }
            var summary = Summary()
            var previous: String?
            while true {
                var entry: OpaquePointer?
                let status = archive_read_next_header(archive, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                    throw damaged(archive, input, after: previous)
                }
                let name = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
                let path = try checkedPath(name, entry: entry, input: input)
                if let recorded = jobAttribute(of: entry) {
                    guard summary.jobID == nil || summary.jobID == recorded else {
                        throw .malformed(
                            path: input.name, "entry '\(name)' belongs to job \(recorded), the entries before it to job \(summary.jobID!)",
                            hint: "give each stream as `backup --to -` wrote it; streams cannot be concatenated")
                    }
                    summary.jobID = recorded
                }
                let target = "\(folder)/\(path)"
                if archive_entry_filetype(entry) == Glibc.S_IFDIR {
                    try createFolder(target)
                } else {
                    try createFolder((target as NSString).deletingLastPathComponent)
                    summary.bytes += try writeFile(
                        archive, entryName: name, size: archive_entry_size(entry), to: target, input: input, after: previous)
                    summary.files += 1
                }
                previous = name
            }
            return summary
        }
    }

    /// The job id an entry carries in its extended attributes, if any.
    private static func jobAttribute(of entry: OpaquePointer) -> String? {
        archive_entry_xattr_reset(entry)
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name, String(cString: name) == TarWriter.jobAttribute, let value else { continue }
            return String(decoding: UnsafeRawBufferPointer(start: value, count: size), as: UTF8.self)
        }
        return nil
    }

    /// The entry's path inside the folder, or the error that refuses it.
    private static func checkedPath(_ name: String, entry: OpaquePointer, input: TarInput) throws(BlockDeltaError) -> String {
        func refuse(_ why: String) -> BlockDeltaError {
            .malformed(
                path: input.name, "refused entry '\(name)': \(why); nothing of the stream was restored",
                hint: "this is not a stream written by `osbackup backup --to -`, or it was altered")
        }
        if archive_entry_hardlink(entry) != nil { throw refuse("a hard link") }
        let type = archive_entry_filetype(entry)
        switch type {
        case Glibc.S_IFREG, Glibc.S_IFDIR: break
        case Glibc.S_IFLNK: throw refuse("a symbolic link")
        case Glibc.S_IFCHR, Glibc.S_IFBLK: throw refuse("a device")
        case Glibc.S_IFIFO: throw refuse("a FIFO")
        default: throw refuse("not a regular file or a folder")
        }
        var path = Substring(name)
        while path.hasPrefix("./") { path = path.dropFirst(2) }
        if type == Glibc.S_IFDIR { while path.hasSuffix("/") { path = path.dropLast() } }
        guard NamespacePath.isContained(String(path)) else {
            throw refuse("an absolute path, an empty, `.` or `..` component, or a NUL")
        }
        guard path != TarSink.failureMarker else {
            throw .malformed(
                path: input.name, "ends with '\(name)': the backup job that wrote it failed or was cancelled, so it is incomplete",
                hint: "restore from the stream of a job that succeeded")
        }
        guard let root = path.split(separator: "/").first, namespaceRoots.contains(root) else {
            throw refuse("outside the backup namespace (@openstack/…, @local/…)")
        }
        return String(path)
    }

    private static func createFolder(_ path: String) throws(BlockDeltaError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: path, "cannot create the folder: \(error.localizedDescription)", hint: hint(for: error))
        }
    }

    /// Writes the current entry's data to a new file at `target`; returns its size.
    private static func writeFile(
        _ archive: OpaquePointer, entryName: String, size declared: Int64, to target: String, input: TarInput, after previous: String?
    ) throws(BlockDeltaError) -> UInt64 {
        let file: OpenFile
        do {
            file = try OpenFile.openForWriting(target, create: true, exclusive: true)
        } catch {
            if error.errorNumber == EEXIST {
                throw .malformed(path: input.name, "entry '\(entryName)' appears twice in the stream", hint: "the stream was altered")
            }
            throw error
        }
        defer { try? file.close() }
        var end: UInt64 = 0
        while true {
            var block: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw damaged(archive, input, after: previous, inside: entryName)
            }
            guard size > 0, let block else { continue }
            do {
                try file.write(UnsafeRawBufferPointer(start: block, count: size), at: UInt64(offset))
            } catch {
                throw error.isNoSpace
                    ? .io("write", path: target, errno: error.errorNumber ?? ENOSPC, hint: "the restore spools each stream there first: free space for its data")
                    : error
            }
            end = max(end, UInt64(offset) + UInt64(size))
        }
        // A sparse entry may end with a hole.
        let size = UInt64(max(0, declared))
        if size > end { try file.truncate(to: size) }
        return max(size, end)
    }

    /// The error of a stream that cannot be read on: truncated, damaged, or not a tar.
    private static func damaged(_ archive: OpaquePointer, _ input: TarInput, after previous: String?, inside entry: String? = nil) -> BlockDeltaError {
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "the stream ends early"
        let place = entry.map { "inside entry '\($0)'" } ?? previous.map { "after entry '\($0)'" } ?? "at its start"
        if systemErrors.contains(archive_errno(archive)) {
            return .io("read the tar stream \(place)", path: input.name, errno: archive_errno(archive))
        }
        return .malformed(
            path: input.name, "cannot be read \(place): \(message)",
            hint: "the stream is truncated or damaged, or not a tar: restore from a complete copy")
    }

    /// The `errno`s that mean the input could not be read, not that its content is wrong (libarchive
    /// reports format errors with EILSEQ, EINVAL or -1).
    private static let systemErrors: Set<Int32> = [EIO, EACCES, EPERM, ENOENT, EISDIR, EBADF, ENXIO, ENOMEM]

    private static func hint(for error: any Error) -> String? {
        (error as NSError).code == NSFileWriteOutOfSpaceError ? "free space where the restore spools the stream" : nil
    }
}
