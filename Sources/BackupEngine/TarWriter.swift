import BlockDelta
import CArchive

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pax tar stream written with libarchive onto a file descriptor: regular-file entries with UTF-8 paths,
/// no directory entries (tar creates folders), checked on every call.
///
/// Not thread-safe: ``TarSink`` serialises every call. Every libarchive call runs in the C.UTF-8 locale
/// (``ArchiveSupport/withUTF8Locale(_:)``).
final class TarWriter {
    /// The output's name in errors ("standard output", or the file's path).
    let outputName: String
    private var archive: OpaquePointer?
    /// Bytes per write(2) on the output; the stream is padded to a multiple of 10 240 bytes at the end
    /// (GNU tar's default record), so `tar` reads it without a record-size warning.
    static let bytesPerBlock: Int32 = 64 << 10
    static let bytesInLastBlock: Int32 = 10_240
    /// The permissions of every file entry.
    static let filePermissions: mode_t = 0o640

    /// The extended attribute each entry carries with the job's id (pax `SCHILY.xattr.user.osbackup.job`),
    /// so a restore knows the stream's job by the id `backup` printed. Tar extracts it only with `--xattrs`.
    static let jobAttribute = "user.osbackup.job"
    /// The job id every entry carries.
    let jobID: String

    /// Opens a pax stream of job `jobID` on `descriptor` (not closed by the writer).
    init(descriptor: Int32, outputName: String, jobID: String) throws(BlockDeltaError) {
        self.outputName = outputName
        self.jobID = jobID
        guard let archive = archive_write_new() else {
            throw .failed(path: outputName, "libarchive cannot allocate a tar writer (out of memory)")
        }
        self.archive = archive
        try ArchiveSupport.withUTF8Locale { () throws(BlockDeltaError) in
            // Restricted pax: a plain ustar header where it suffices, a pax extended header (UTF-8 path,
            // sizes past 8 GiB) only where needed.
            try check(archive_write_set_format_pax_restricted(archive), "select the pax tar format")
            // Extended attributes (the job id) only as SCHILY.xattr, which GNU tar knows; the LIBARCHIVE.xattr
            // copy would make it warn about an unknown keyword on every entry.
            try check(archive_write_set_format_option(archive, "pax", "xattrheader", "SCHILY"), "select the pax xattr header")
            try check(archive_write_set_bytes_per_block(archive, Self.bytesPerBlock), "set the tar block size")
            try check(archive_write_set_bytes_in_last_block(archive, Self.bytesInLastBlock), "set the tar block size")
            try check(archive_write_open_fd(archive, descriptor), "open the tar stream")
        }
    }

    deinit {
        if let archive {
            _ = archive_write_fail(archive)
            archive_write_free(archive)
        }
    }

    /// Appends a regular file holding `bytes` at `path`.
    func append(_ path: String, bytes: [UInt8]) throws(BlockDeltaError) {
        try entry(path, size: UInt64(bytes.count)) { () throws(BlockDeltaError) in
            try bytes.withUnsafeBytes { buffer in Result { () throws(BlockDeltaError) in try writeData(buffer, path: path) } }.get()
        }
    }

    /// Appends a regular file at `path` with the content of the local file `source`; returns its size.
    @discardableResult
    func append(_ path: String, copying source: String) throws(BlockDeltaError) -> UInt64 {
        let file = try OpenFile.openForReading(source)
        defer { try? file.close() }
        let size = try file.size()
        file.adviseSequentialRead()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        try entry(path, size: size) { () throws(BlockDeltaError) in
            var offset: UInt64 = 0
            while offset < size {
                let count = Int(min(UInt64(buffer.count), size - offset))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                try file.readExactly(into: slice, at: offset)
                try writeData(UnsafeRawBufferPointer(slice), path: path)
                offset += UInt64(count)
            }
        }
        return size
    }

    /// Writes the end-of-archive records and flushes the last block.
    func close() throws(BlockDeltaError) {
        guard let archive else { throw .failed(path: outputName, "the tar stream was already closed") }
        defer {
            archive_write_free(archive)
            self.archive = nil
        }
        try ArchiveSupport.withUTF8Locale { () throws(BlockDeltaError) in
            try check(archive_write_close(archive), "close the tar stream")
        }
    }

    /// Drops the stream without its end-of-archive records, so a reader sees it truncated rather than a
    /// complete backup.
    func fail() {
        guard let archive else { return }
        _ = archive_write_fail(archive)
        archive_write_free(archive)
        self.archive = nil
    }

    private func entry(_ path: String, size: UInt64, body: () throws(BlockDeltaError) -> Void) throws(BlockDeltaError) {
        guard let archive else { throw .failed(path: outputName, "the tar stream was already closed") }
        guard NamespacePath.isContained(path) else {
            throw .invalidArgument("namespace path '\(path)' is not a relative path inside the stream", path: outputName)
        }
        guard path.utf8.allSatisfy({ $0 < 0x80 }) || ArchiveSupport.handlesUTF8 else {
            throw .failed(
                path: outputName, "cannot write the non-ASCII path '\(path)': the C library has no C.UTF-8 locale",
                hint: "run osbackup with LC_ALL set to a UTF-8 locale")
        }
        try ArchiveSupport.withUTF8Locale { () throws(BlockDeltaError) in
            guard let entry = archive_entry_new() else {
                throw .failed(path: outputName, "libarchive cannot allocate a tar entry (out of memory)")
            }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname_utf8(entry, path)
            archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
            archive_entry_set_perm(entry, Self.filePermissions)
            archive_entry_set_size(entry, Int64(size))
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            archive_entry_set_mtime(entry, now.tv_sec, Int(now.tv_nsec))
            Array(jobID.utf8).withUnsafeBytes { value in
                archive_entry_xattr_add_entry(entry, Self.jobAttribute, value.baseAddress, value.count)
            }
            try check(archive_write_header(archive, entry), "write the tar header of \(path)")
            try body()
            try check(archive_write_finish_entry(archive), "finish the tar entry \(path)")
        }
    }

    private func writeData(_ bytes: UnsafeRawBufferPointer, path: String) throws(BlockDeltaError) {
        guard let archive, !bytes.isEmpty else { return }
        let written = archive_write_data(archive, bytes.baseAddress, bytes.count)
        guard written == bytes.count else {
            if written < 0 { throw ArchiveSupport.error(archive, "write \(path) to the tar stream", path: outputName) }
            throw .failed(path: outputName, "the tar stream took \(written) of \(bytes.count) bytes of \(path)")
        }
    }

    /// Throws unless a libarchive call returned ARCHIVE_OK (a warning is a failure too: nothing in a backup
    /// stream may be approximated).
    private func check(_ status: Int32, _ operation: String) throws(BlockDeltaError) {
        guard status != ARCHIVE_OK else { return }
        guard let archive else { throw .failed(path: outputName, "\(operation) failed: the stream is closed") }
        throw ArchiveSupport.error(archive, operation, path: outputName)
    }
}
