/// Opens one format file and checks its frame: header, size against the trailer's record count, and
/// (on request) the checksum. Records are then read in order with a ``RecordCursor`` or by index.
public final class FormatFileReader: Sendable {
    /// The file's path, for error messages.
    public let path: String
    /// The decoded header.
    public let header: FormatHeader
    /// The number of records the trailer announces (data bytes for block data, bytes of frames for framed
    /// block data).
    public let recordCount: UInt64
    /// The checksum stored in the trailer.
    public let storedChecksum: BlockDigest
    /// The open file.
    public let file: OpenFile
    /// The file size in bytes.
    public let fileSize: UInt64

    /// The descriptor in the header.
    public var descriptor: BackupDescriptor { header.descriptor }

    /// Opens `path` as a `kind` file; throws a one-line error naming the file if its frame is wrong.
    public init(path: String, expecting kind: FormatKind) throws(BlockDeltaError) {
        self.path = path
        let file = try OpenFile.openForReading(path)
        let fileSize = try file.size()
        self.file = file
        self.fileSize = fileSize
        let minimum = UInt64(FormatHeader.size + FormatHeader.trailerSize)
        guard fileSize >= minimum else {
            throw .malformed(
                path: path, "file is \(fileSize) bytes, shorter than a \(kind) file can be (\(minimum))",
                hint: "the file is truncated")
        }
        var headerBytes = [UInt8](repeating: 0, count: FormatHeader.size)
        try headerBytes.withMutableBytes { buffer throws(BlockDeltaError) in
            try file.readExactly(into: buffer, at: 0)
        }
        header = try FormatHeader(decoding: headerBytes, expecting: kind, path: path)
        var trailer = [UInt8](repeating: 0, count: FormatHeader.trailerSize)
        try trailer.withMutableBytes { buffer throws(BlockDeltaError) in
            try file.readExactly(into: buffer, at: fileSize - UInt64(FormatHeader.trailerSize))
        }
        recordCount = trailer.littleEndian(UInt64.self, at: 0)
        storedChecksum = trailer.withUnsafeBytes { BlockDigest(bytes: UnsafeRawBufferPointer(rebasing: $0[8...])) }
        let contentBytes = fileSize - minimum
        let (expected, overflow) = recordCount.multipliedReportingOverflow(by: UInt64(kind.recordSize))
        guard !overflow, expected == contentBytes else {
            throw .malformed(
                path: path,
                "holds \(contentBytes) bytes of records but its trailer announces \(recordCount) records of \(kind.recordSize) bytes",
                hint: "the file is truncated or damaged")
        }
    }

    /// The byte offset of record `index`.
    public func offset(ofRecord index: UInt64) -> UInt64 {
        UInt64(FormatHeader.size) + index * UInt64(header.kind.recordSize)
    }

    /// Re-reads the whole file and checks the trailer checksum (not for block data: see
    /// ``verifyBlockDataChecksum(digests:)``).
    public func verifyChecksum() throws(BlockDeltaError) {
        precondition(header.kind != .blockData)
        let hasher = SHA256Hasher()
        try feed(range: 0..<(fileSize - 32), to: hasher, from: file)
        guard hasher.finalize() == storedChecksum else {
            throw .malformed(path: path, "checksum does not match the contents", hint: "the file is corrupt")
        }
    }

    /// Checks a block data file's trailer against its digest list: the checksum covers this file's header,
    /// the digest list's records and this file's byte count.
    public func verifyBlockDataChecksum(digests: FormatFileReader) throws(BlockDeltaError) {
        precondition(header.kind == .blockData && digests.header.kind == .digestList)
        let hasher = SHA256Hasher()
        try feed(range: 0..<UInt64(FormatHeader.size), to: hasher, from: file)
        try feed(range: digests.offset(ofRecord: 0)..<digests.offset(ofRecord: digests.recordCount), to: hasher, from: digests.file)
        var count = [UInt8]()
        count.appendLittleEndian(recordCount)
        hasher.update(count)
        guard hasher.finalize() == storedChecksum else {
            throw .malformed(
                path: path, "checksum does not match its digest list \(digests.path)",
                hint: "the files are from different backups or one of them is corrupt")
        }
    }

    private func feed(range: Range<UInt64>, to hasher: SHA256Hasher, from source: OpenFile) throws(BlockDeltaError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var offset = range.lowerBound
        while offset < range.upperBound {
            let count = Int(min(UInt64(buffer.count), range.upperBound - offset))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
            try source.readExactly(into: slice, at: offset)
            hasher.update(UnsafeRawBufferPointer(slice))
            offset += UInt64(count)
        }
    }

    /// Reads `count` records starting at `index` into `buffer` (which must hold them).
    public func readRecords(from index: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws(BlockDeltaError) {
        let bytes = count * header.kind.recordSize
        precondition(buffer.count >= bytes)
        guard index + UInt64(count) <= recordCount else {
            throw .malformed(
                path: path, "record \(index + UInt64(count) - 1) was asked for but the file holds \(recordCount)",
                hint: "the backup's files do not agree")
        }
        try file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes]), at: offset(ofRecord: index))
    }

    /// A cursor that reads the records front to back through a buffer of about `bufferBytes` (at least one
    /// record).
    public func makeCursor(bufferBytes: Int = RecordCursor.defaultBufferBytes) -> RecordCursor {
        RecordCursor(reader: self, bufferBytes: bufferBytes)
    }
}

/// Reads the records of a format file in order, a buffer at a time.
public final class RecordCursor {
    private let reader: FormatFileReader
    private let recordSize: Int
    private let buffer: UnsafeMutableRawBufferPointer
    private var bufferedRecords = 0
    private var position = 0
    /// The index of the next record ``next()`` returns.
    public private(set) var nextIndex: UInt64 = 0

    /// The buffer size of a cursor unless its maker asks for another.
    public static let defaultBufferBytes = 256 << 10

    init(reader: FormatFileReader, bufferBytes: Int) {
        self.reader = reader
        recordSize = reader.header.kind.recordSize
        buffer = .allocate(byteCount: max(recordSize, bufferBytes / recordSize * recordSize), alignment: 16)
    }

    deinit {
        buffer.deallocate()
    }

    /// The next record's bytes (valid until the next call), or nil after the last record.
    public func next() throws(BlockDeltaError) -> UnsafeRawBufferPointer? {
        if position == bufferedRecords {
            let remaining = reader.recordCount - nextIndex
            guard remaining > 0 else { return nil }
            let count = Int(min(UInt64(buffer.count / recordSize), remaining))
            try reader.readRecords(from: nextIndex, count: count, into: buffer)
            bufferedRecords = count
            position = 0
        }
        let start = position * recordSize
        position += 1
        nextIndex += 1
        return UnsafeRawBufferPointer(rebasing: buffer[start..<(start + recordSize)])
    }

    /// The next record read as a digest, or nil after the last.
    public func nextDigest() throws(BlockDeltaError) -> BlockDigest? {
        try next().map { BlockDigest(bytes: $0) }
    }
}
