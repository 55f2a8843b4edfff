import CLinuxIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file or block device, read and written with positional I/O.
///
/// `pread` and `pwrite` take explicit offsets and are safe to call from several threads at once; the
/// descriptor never changes after `init` and closing is guarded by a mutex, so the class is `Sendable`.
public final class OpenFile: Sendable {
    /// The path the file was opened by, for error messages.
    public let path: String
    /// The POSIX file descriptor.
    public let descriptor: Int32
    private let isClosed = Mutex(false)

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        if !isClosed.withLock({ $0 }) { _ = Glibc.close(descriptor) }
    }

    /// Opens `path` for reading; with `direct`, bypasses the page cache (`O_DIRECT`) where supported.
    public static func openForReading(_ path: String, direct: Bool = false) throws(BlockDeltaError) -> OpenFile {
        var flags = O_RDONLY | O_CLOEXEC
        if direct { flags |= osb_o_direct_flag() }
        let descriptor = Glibc.open(path, flags)
        guard descriptor >= 0 else {
            let code = errno
            throw .io("open for reading", path: path, errno: code, hint: code == ENOENT ? "check the path" : nil)
        }
        return OpenFile(path: path, descriptor: descriptor)
    }

    /// Opens `path` for writing, creating a regular file with `permissions` (before the umask) when `create`
    /// is set and it does not exist; with `direct`, bypasses the page cache (`O_DIRECT`: buffers, offsets and
    /// lengths must then be aligned to the device's logical block size).
    public static func openForWriting(
        _ path: String, create: Bool, exclusive: Bool = false, truncate: Bool = false, permissions: UInt32 = 0o640,
        direct: Bool = false
    ) throws(BlockDeltaError) -> OpenFile {
        var flags = O_WRONLY | O_CLOEXEC
        if direct { flags |= osb_o_direct_flag() }
        if create { flags |= O_CREAT }
        if exclusive { flags |= O_EXCL }
        if truncate { flags |= O_TRUNC }
        let descriptor = Glibc.open(path, flags, mode_t(permissions))
        guard descriptor >= 0 else { throw .io("open for writing", path: path, errno: errno) }
        return OpenFile(path: path, descriptor: descriptor)
    }

    /// Whether this is a block device rather than a regular file.
    public func isBlockDevice() throws(BlockDeltaError) -> Bool {
        try status().st_mode & S_IFMT == S_IFBLK
    }

    /// The size in bytes: `st_size` for a file, `BLKGETSIZE64` for a block device.
    public func size() throws(BlockDeltaError) -> UInt64 {
        let info = try status()
        if info.st_mode & S_IFMT == S_IFBLK {
            var bytes: UInt64 = 0
            guard osb_block_device_size(descriptor, &bytes) == 0 else {
                throw .io("ioctl BLKGETSIZE64", path: path, errno: errno)
            }
            return bytes
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw .invalidArgument("not a regular file or block device", path: path)
        }
        return UInt64(info.st_size)
    }

    private func status() throws(BlockDeltaError) -> stat {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io("fstat", path: path, errno: errno) }
        return info
    }

    /// Tells the kernel the file will be read front to back (larger read-ahead).
    public func adviseSequentialRead() {
        #if os(Linux)
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
    }

    /// Reads up to `buffer.count` bytes at `offset`, looping over short reads; returns the count read,
    /// which is smaller only at the end of the file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockDeltaError) -> Int {
        var done = 0
        while done < buffer.count {
            let result = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .io("read at byte \(offset + UInt64(done))", path: path, errno: errno)
            }
            if result == 0 { break }
            done += result
        }
        return done
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or throws naming the file as truncated.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockDeltaError) {
        let count = try read(into: buffer, at: offset)
        guard count == buffer.count else {
            throw .malformed(
                path: path, "file ends at byte \(offset + UInt64(count)), expected \(buffer.count) bytes at \(offset)",
                hint: "the file is truncated")
        }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockDeltaError) {
        var done = 0
        while done < bytes.count {
            let result = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw .io("write at byte \(offset + UInt64(done))", path: path, errno: errno)
            }
            done += result
        }
    }

    /// Writes every byte of `parts`, one after the other, starting at `offset`: one `pwritev` per 1 024
    /// parts (the kernel's limit), looping over short writes. Safe from several threads at once for
    /// ranges that do not overlap.
    public func write(gathering parts: [UnsafeRawBufferPointer], at offset: UInt64) throws(BlockDeltaError) {
        var vectors = parts.filter { !$0.isEmpty }.map {
            iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
        }
        var position = offset
        var first = 0
        while first < vectors.count {
            let count = min(vectors.count - first, Self.maximumWriteVectors)
            let result = vectors.withUnsafeBufferPointer { all in
                pwritev(descriptor, all.baseAddress! + first, Int32(count), off_t(position))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw .io("write at byte \(position)", path: path, errno: errno)
            }
            position += UInt64(result)
            // Skip the vectors written whole; the first one written in part is trimmed.
            var written = result
            while written > 0, first < vectors.count, written >= vectors[first].iov_len {
                written -= vectors[first].iov_len
                first += 1
            }
            if written > 0 {
                vectors[first].iov_base += written
                vectors[first].iov_len -= written
            }
        }
    }

    /// The most parts one `pwritev` takes (`IOV_MAX` on Linux).
    static let maximumWriteVectors = 1024

    /// The first offset at or after `offset` that holds data (`SEEK_DATA`), or nil when only holes follow
    /// up to the end of the file.
    public func nextData(from offset: UInt64) throws(BlockDeltaError) -> UInt64? {
        let result = osb_seek_data(descriptor, offset)
        if result >= 0 { return UInt64(result) }
        if errno == ENXIO { return nil }
        throw .io("seek for data from byte \(offset)", path: path, errno: errno)
    }

    /// The first offset at or after `offset` that lies in a hole (`SEEK_HOLE`); the end of the file counts
    /// as one.
    public func nextHole(from offset: UInt64) throws(BlockDeltaError) -> UInt64 {
        let result = osb_seek_hole(descriptor, offset)
        guard result >= 0 else { throw .io("seek for a hole from byte \(offset)", path: path, errno: errno) }
        return UInt64(result)
    }

    /// Sets the file length (regular files only).
    public func truncate(to length: UInt64) throws(BlockDeltaError) {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw .io("ftruncate", path: path, errno: errno) }
    }

    /// Makes `length` bytes at `offset` read as zeros: a hole in a regular file, zeroed sectors on a device.
    public func zeroRange(at offset: UInt64, length: UInt64, isBlockDevice: Bool) throws(BlockDeltaError) {
        guard length > 0 else { return }
        let result =
            isBlockDevice
            ? osb_block_device_zero_out(descriptor, offset, length) : osb_punch_hole(descriptor, offset, length)
        if result == 0 { return }
        // Filesystems or devices without hole punching or zero-out get explicit zeros.
        try writeZeros(at: offset, length: length)
    }

    private func writeZeros(at offset: UInt64, length: UInt64) throws(BlockDeltaError) {
        let chunk = Int(min(length, 1 << 20))
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(chunk), length - done))
            try write(UnsafeRawBufferPointer(rebasing: zeros[0..<count]), at: offset + done)
            done += UInt64(count)
        }
    }

    /// Flushes the file's data and metadata to stable storage.
    public func sync() throws(BlockDeltaError) {
        guard fsync(descriptor) == 0 else { throw .io("fsync", path: path, errno: errno) }
    }

    /// Closes the descriptor now rather than at deinit.
    public func close() throws(BlockDeltaError) {
        let wasClosed = isClosed.withLock { closed in
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        guard Glibc.close(descriptor) == 0 else { throw .io("close", path: path, errno: errno) }
    }
}

/// Flushes a directory entry change (create, rename) to stable storage.
public func syncDirectory(_ path: String) throws(BlockDeltaError) {
    let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else { throw .io("open directory", path: path, errno: errno) }
    defer { _ = close(descriptor) }
    guard fsync(descriptor) == 0 else { throw .io("fsync directory", path: path, errno: errno) }
}
