/// Writes one format file front to back: header, records, trailer; buffered, with the running checksum
/// over the header, the records and the count.
///
/// Block data files, whose checksum covers the blocks' digests instead of their bytes and whose records
/// are written at offsets by several threads, have their own writer: ``BlockDataFileWriter``.
public final class FormatFileWriter {
    /// Where the file is written.
    public let path: String
    /// The header written at the start.
    public let header: FormatHeader
    private let file: OpenFile
    private let checksum = SHA256Hasher()
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    private var fileOffset: UInt64 = 0
    /// Bytes written after the header so far.
    public private(set) var contentBytes: UInt64 = 0
    private var isFinished = false

    private static let bufferSize = 1 << 20

    /// Creates (or replaces) the file at `path` and writes the header.
    public init(path: String, header: FormatHeader) throws(BlockDeltaError) {
        precondition(header.kind != .blockData, "block data has its own writer, BlockDataFileWriter")
        self.path = path
        self.header = header
        file = try OpenFile.openForWriting(path, create: true, truncate: true)
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 4096)
        let headerBytes = header.encoded()
        checksum.update(headerBytes)
        try headerBytes.withBytes { bytes throws(BlockDeltaError) in try appendToBuffer(bytes) }
    }

    deinit {
        buffer.deallocate()
    }

    /// Appends record bytes.
    public func append(_ bytes: UnsafeRawBufferPointer) throws(BlockDeltaError) {
        checksum.update(bytes)
        contentBytes += UInt64(bytes.count)
        if bytes.count >= Self.bufferSize / 2 {
            try flush()
            try file.write(bytes, at: fileOffset)
            fileOffset += UInt64(bytes.count)
        } else {
            try appendToBuffer(bytes)
        }
    }

    /// Appends one digest record.
    public func append(_ digest: BlockDigest) throws(BlockDeltaError) {
        try digest.withEncodedBytes { bytes throws(BlockDeltaError) in try append(bytes) }
    }

    /// Writes the trailer, flushes, syncs and closes the file; returns the file's size.
    @discardableResult
    public func finish(recordCount: UInt64) throws(BlockDeltaError) -> UInt64 {
        precondition(!isFinished, "finish called twice")
        var countBytes = [UInt8]()
        countBytes.appendLittleEndian(recordCount)
        checksum.update(countBytes)
        let trailer = countBytes + checksum.finalize().bytes
        try trailer.withBytes { bytes throws(BlockDeltaError) in try appendToBuffer(bytes) }
        try flush()
        try file.sync()
        try file.close()
        isFinished = true
        return fileOffset
    }

    /// Closes the file without a trailer (on an error path); the file is left incomplete and invalid.
    public func abandon() {
        isFinished = true
        try? file.close()
    }

    private func appendToBuffer(_ bytes: UnsafeRawBufferPointer) throws(BlockDeltaError) {
        var remaining = bytes
        while !remaining.isEmpty {
            let count = min(remaining.count, buffer.count - buffered)
            UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<(buffered + count)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: remaining[0..<count]))
            buffered += count
            remaining = UnsafeRawBufferPointer(rebasing: remaining[count...])
            if buffered == buffer.count { try flush() }
        }
    }

    private func flush() throws(BlockDeltaError) {
        guard buffered > 0 else { return }
        try file.write(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]), at: fileOffset)
        fileOffset += UInt64(buffered)
        buffered = 0
    }
}
