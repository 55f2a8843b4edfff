/// The common 128-byte header and 40-byte trailer of every osbackup binary file.
///
/// Byte layout (all integers little-endian; docs/formats.md holds the same table):
///
/// ```
/// offset size  field
///      0    8  magic: "OSBKMAP\n" | "OSBKBMP\n" | "OSBKSHA\n" | "OSBKDAT\n"
///      8    2  format version (1; 2 for framed block data, see BlockFrameWord)
///     10    2  hash algorithm (1 = SHA-256)
///     12    4  block size in bytes
///     16    8  volume size in bytes
///     24   16  backup id (UUID bytes)
///     40   16  parent backup id (all zero: none)
///     56   16  full backup id (root of the chain; equals the backup id for a Full)
///     72    1  level (0 Full, 1 Incremental, 2 Differential)
///     73    1  volume id length n (1...54)
///     74   54  volume id, UTF-8, zero padded
///    128       records ...
///  end-40   8  record count (block data: bytes of data, version 2: bytes of frames)
///  end-32  32  SHA-256 checksum (what it covers depends on the kind, see FormatKind)
/// ```
public enum FormatKind: Sendable, CaseIterable, CustomStringConvertible {
    /// `.map`: one digest per block of the volume (the working-dir hash map).
    case hashMap
    /// `.bmp`: the regions of one backup.
    case regionList
    /// `.bmpsha`: the digests of the data blocks of one backup.
    case digestList
    /// `.bvmdk`: the data of one backup's data regions.
    case blockData

    /// The eight magic bytes at the start of the file.
    public var magic: [UInt8] {
        let text: String
        switch self {
        case .hashMap: text = "OSBKMAP\n"
        case .regionList: text = "OSBKBMP\n"
        case .digestList: text = "OSBKSHA\n"
        case .blockData: text = "OSBKDAT\n"
        }
        return Array(text.utf8)
    }

    /// The size of one record after the header (1 for raw data).
    public var recordSize: Int {
        switch self {
        case .hashMap, .digestList: BlockDigest.byteCount
        case .regionList: Region.encodedSize
        case .blockData: 1
        }
    }

    /// The usual file name extension.
    public var fileExtension: String {
        switch self {
        case .hashMap: "map"
        case .regionList: "bmp"
        case .digestList: "bmpsha"
        case .blockData: "bvmdk"
        }
    }

    public var description: String {
        switch self {
        case .hashMap: "hash map"
        case .regionList: "region list"
        case .digestList: "digest list"
        case .blockData: "block data"
        }
    }
}

/// The header fields of a format file: its kind and the backup it describes.
public struct FormatHeader: Hashable, Sendable {
    /// The header size in bytes.
    public static let size = 128
    /// The trailer size in bytes (record count and checksum).
    public static let trailerSize = 40
    /// The format version of every file but framed block data.
    public static let currentVersion: UInt16 = 1
    /// The hash algorithm code for SHA-256.
    public static let sha256Algorithm: UInt16 = 1

    /// What the file holds.
    public var kind: FormatKind
    /// The backup and volume it belongs to.
    public var descriptor: BackupDescriptor
    /// How block data is laid out (always ``BlockDataLayout/contiguous`` for the other kinds).
    public var layout: BlockDataLayout

    /// The format version written in the header.
    public var version: UInt16 { layout.formatVersion }

    /// Creates a header; only block data may be ``BlockDataLayout/framed``.
    public init(kind: FormatKind, descriptor: BackupDescriptor, layout: BlockDataLayout = .contiguous) {
        precondition(kind == .blockData || layout == .contiguous, "only block data has a framed layout")
        self.kind = kind
        self.descriptor = descriptor
        self.layout = layout
    }

    /// The 128 header bytes.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.size)
        bytes += kind.magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(Self.sha256Algorithm)
        bytes.appendLittleEndian(UInt32(descriptor.geometry.blockSize))
        bytes.appendLittleEndian(descriptor.geometry.volumeSize)
        bytes += descriptor.backupID.bytes
        bytes += descriptor.parentID?.bytes ?? [UInt8](repeating: 0, count: 16)
        bytes += descriptor.fullID.bytes
        bytes.append(descriptor.level.rawValue)
        let volumeID = Array(descriptor.volumeID.utf8)
        bytes.append(UInt8(volumeID.count))
        bytes += volumeID
        bytes += [UInt8](repeating: 0, count: Self.size - bytes.count)
        return bytes
    }

    /// Decodes and checks header bytes; `path` names the file in errors.
    public init(decoding bytes: [UInt8], expecting kind: FormatKind, path: String) throws(BlockDeltaError) {
        guard bytes.count == Self.size else {
            throw .malformed(path: path, "file is shorter than the \(Self.size)-byte header", hint: "the file is truncated")
        }
        guard Array(bytes[0..<8]) == kind.magic else {
            let found = FormatKind.allCases.first { Array(bytes[0..<8]) == $0.magic }
            throw .malformed(
                path: path,
                found.map { "is a \($0) file, expected a \(kind) file" } ?? "is not an osbackup \(kind) file (bad magic)")
        }
        let version = bytes.littleEndian(UInt16.self, at: 8)
        let framed = BlockDataLayout.framed.formatVersion
        switch version {
        case Self.currentVersion: layout = .contiguous
        case framed where kind == .blockData: layout = .framed
        default:
            let readable = kind == .blockData ? "versions \(Self.currentVersion) and \(framed)" : "version \(Self.currentVersion)"
            throw .malformed(
                path: path, "format version \(version) is not supported (this osbackup reads \(kind) \(readable))",
                hint: "use the osbackup release that wrote it")
        }
        let algorithm = bytes.littleEndian(UInt16.self, at: 10)
        guard algorithm == Self.sha256Algorithm else {
            throw .malformed(path: path, "unknown hash algorithm \(algorithm)")
        }
        let geometry: VolumeGeometry
        do {
            geometry = try VolumeGeometry(
                blockSize: Int(bytes.littleEndian(UInt32.self, at: 12)), volumeSize: bytes.littleEndian(UInt64.self, at: 16))
        } catch {
            throw .malformed(path: path, "header: \(error.reason)")
        }
        guard let backupID = BackupID(bytes: bytes[24..<40]), let fullID = BackupID(bytes: bytes[56..<72]) else {
            throw .malformed(path: path, "header has an empty backup id")
        }
        let parentID = BackupID(bytes: bytes[40..<56])
        guard let level = BackupLevel(rawValue: bytes[72]) else {
            throw .malformed(path: path, "header has unknown level \(bytes[72])")
        }
        let idLength = Int(bytes[73])
        guard idLength >= 1, idLength <= BackupDescriptor.maximumVolumeIDLength,
            let volumeID = String(validating: bytes[74..<(74 + idLength)], as: UTF8.self),
            bytes[(74 + idLength)...].allSatisfy({ $0 == 0 })
        else {
            throw .malformed(path: path, "header has a malformed volume id")
        }
        do {
            descriptor = try BackupDescriptor(
                geometry: geometry, backupID: backupID, parentID: parentID, fullID: fullID, level: level,
                volumeID: volumeID)
        } catch {
            throw .malformed(path: path, "header: \(error.reason)")
        }
        self.kind = kind
    }
}

extension [UInt8] {
    /// `withUnsafeBytes` for a body that throws ``BlockDeltaError``.
    func withBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws(BlockDeltaError) -> Result
    ) throws(BlockDeltaError) -> Result {
        try withUnsafeBytes { bytes in Swift.Result { () throws(BlockDeltaError) in try body(bytes) } }.get()
    }

    /// `withUnsafeMutableBytes` for a body that throws ``BlockDeltaError``.
    mutating func withMutableBytes<Result>(
        _ body: (UnsafeMutableRawBufferPointer) throws(BlockDeltaError) -> Result
    ) throws(BlockDeltaError) -> Result {
        try withUnsafeMutableBytes { bytes in Swift.Result { () throws(BlockDeltaError) in try body(bytes) } }.get()
    }

    /// Appends an integer in little-endian byte order.
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Reads a little-endian integer at `offset`.
    func littleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value = T.zero
        for index in (0..<MemoryLayout<T>.size).reversed() {
            value = value << 8 | T(self[offset + index])
        }
        return value
    }
}
