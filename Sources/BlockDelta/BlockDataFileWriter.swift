/// Writes a block data file (`.bvmdk`, either layout; see ``BlockFrameWord`` and docs/formats.md) whose
/// records are placed at offsets rather than appended, so that several threads write their chunks' bytes
/// at once.
///
/// The header is written when the file is created. Records go in through ``placement``, a `Sendable`
/// handle that any thread may use for ranges that do not overlap; the owner of the writer (one thread)
/// feeds the digests of the blocks in order into the checksum and finally writes the trailer at the end of
/// the records with ``finish(recordCount:)``. The bytes on disk are those an ordered writer would write:
/// the format does not know how they were written.
public final class BlockDataFileWriter {
    /// Where the file is written.
    public let path: String
    /// The header written at the start.
    public let header: FormatHeader
    /// Writes records at offsets, from any thread.
    public let placement: BlockDataPlacement
    private let file: OpenFile
    private let checksum = SHA256Hasher()
    private var isFinished = false

    /// Creates (or replaces) the file at `path` and writes the header.
    public init(path: String, header: FormatHeader) throws(BlockDeltaError) {
        precondition(header.kind == .blockData)
        self.path = path
        self.header = header
        file = try OpenFile.openForWriting(path, create: true, truncate: true)
        placement = BlockDataPlacement(file: file)
        let headerBytes = header.encoded()
        checksum.update(headerBytes)
        do {
            try headerBytes.withBytes { bytes throws(BlockDeltaError) in try file.write(bytes, at: 0) }
        } catch {
            try? file.close()
            throw error
        }
    }

    /// Feeds the digest of the next block this file holds (in the order of the digest list) into the checksum.
    public func addDigestToChecksum(_ digest: BlockDigest) {
        digest.withEncodedBytes { checksum.update($0) }
    }

    /// Writes the trailer after `recordCount` bytes of records, syncs and closes the file; returns its size.
    ///
    /// Every placed write must have returned before this is called.
    @discardableResult
    public func finish(recordCount: UInt64) throws(BlockDeltaError) -> UInt64 {
        precondition(!isFinished, "finish called twice")
        var countBytes = [UInt8]()
        countBytes.appendLittleEndian(recordCount)
        checksum.update(countBytes)
        let trailer = countBytes + checksum.finalize().bytes
        let trailerOffset = UInt64(FormatHeader.size) + recordCount
        try trailer.withBytes { bytes throws(BlockDeltaError) in try file.write(bytes, at: trailerOffset) }
        try file.sync()
        try file.close()
        isFinished = true
        return trailerOffset + UInt64(trailer.count)
    }

    /// Closes the file without a trailer (on an error path); the file is left incomplete and invalid.
    public func abandon() {
        isFinished = true
        try? file.close()
    }
}

/// The part of a ``BlockDataFileWriter`` that any thread may use: writes record bytes at an offset.
public struct BlockDataPlacement: Sendable {
    private let file: OpenFile

    init(file: OpenFile) { self.file = file }

    /// Writes `parts`, one after the other, at `offset` bytes after the header (one `pwritev`).
    public func write(_ parts: [UnsafeRawBufferPointer], atRecordOffset offset: UInt64) throws(BlockDeltaError) {
        try file.write(gathering: parts, at: UInt64(FormatHeader.size) + offset)
    }
}
