import BlockDelta
import Foundation
import Testing
import TestSupport

/// Damaged or malformed frames of compressed block data give one line naming the file and the block, and a
/// restore from them writes nothing.
@Suite("Damaged compressed block data")
struct CompressedDamageTests {
    static let blockSize = 4096

    /// Restores `files` and expects a refusal naming `path` (and containing `message` when given).
    private func expectRefused(_ files: VolumeBackupFiles, naming path: String, message: String?, in directory: String) {
        let restored = "\(directory)/restored.img"
        let error = #expect(throws: BlockDeltaError.self) {
            try ChainRestorer.restore(chain: [files], to: restored, logger: testLogger)
        }
        let line = error?.description ?? ""
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix(path), "\(line)")
        if let message { #expect(line.contains(message), "\(line)") }
        #expect(error?.isDataIntegrityError == true)
        #expect(!FileManager.default.fileExists(atPath: restored))
        #expect(!FileManager.default.fileExists(atPath: restored + ".osbackup-partial"))
        #expect(throws: BlockDeltaError.self) { try ChainRestorer.verify(chain: [files]) }
    }

    enum Crafted: String, CaseIterable, CustomTestStringConvertible {
        case decompressesShort, decompressesLong, notZstd
        var testDescription: String { rawValue }
    }

    @Test("a zstd frame of the wrong size or not zstd at all is refused", arguments: Crafted.allCases)
    func craftedFrame(kind: Crafted) throws {
        try withTemporaryDirectory { directory in
            let block = ContentKind.compressible.content(size: Self.blockSize, seed: 41)
            let (frame, message): ([UInt8], String) =
                switch kind {
                case .decompressesShort: (zstdFrame(of: Array(block[0..<4000])), "decompresses to 4000 bytes, not the block's 4096")
                case .decompressesLong: (zstdFrame(of: block + block), "decompresses to more than the block's 4096 bytes")
                case .notZstd: (Array(repeating: 0x77, count: 100), "does not decompress")
                }
            let id = BackupID.generate()
            let descriptor = try BackupDescriptor(
                geometry: VolumeGeometry(blockSize: Self.blockSize, volumeSize: UInt64(Self.blockSize)), backupID: id,
                parentID: nil, fullID: id, level: .full, volumeID: "crafted")
            let files = VolumeBackupFiles(
                regions: "\(directory)/c.bmp", digests: "\(directory)/c.bmpsha", data: "\(directory)/c.bvmdk")
            let writer = try VolumeBackupWriter(files: files, descriptor: descriptor, dataLayout: .framed)
            let digest = block.withUnsafeBytes { SHA256Hasher().digest(of: $0) }
            try block.withUnsafeBytes { bytes in
                try frame.withUnsafeBytes { frameBytes in
                    try writer.appendData(firstBlock: 0, digests: [digest], bytes: bytes, compressedFrame: { _ in frameBytes })
                }
            }
            _ = try writer.finish()
            expectRefused(files, naming: files.data, message: "zstd frame of data block 0 at byte 128 \(message)", in: directory)
        }
    }

    enum Damage: String, CaseIterable, CustomTestStringConvertible {
        case frameLength, compressedFlag, payloadByte, lastFrameRunsPast, truncated
        var testDescription: String { rawValue }
    }

    @Test("damaged frames of a scanned backup are refused by name", arguments: Damage.allCases)
    func damagedFrames(kind: Damage) throws {
        try withTemporaryDirectory { directory in
            let content = ContentKind.compressible.content(size: 30 * Self.blockSize, seed: 42)
            let backup = try scan(content, in: directory, name: "full", blockSize: Self.blockSize, encoding: .zstd(level: 1))
            let path = backup.files.data
            let words = try frameWords(of: path)
            #expect(words.allSatisfy { $0.isCompressed })
            var message: String?
            switch kind {
            case .frameLength:
                try patch(path, at: FormatHeader.size + 1) { $0 ^ 0x0F }
            case .compressedFlag:
                try patch(path, at: FormatHeader.size + 3) { $0 ^ 0x80 }
                message = "frame of data block 0 at byte 128 stores \(words[0].storedLength) raw bytes for a block of 4096"
            case .payloadByte:
                try patch(path, at: FormatHeader.size + BlockFrameWord.size + words[0].storedLength / 2) { $0 ^ 0x5A }
            case .lastFrameRunsPast:
                let lastWord = FormatHeader.size + words.dropLast().reduce(0) { $0 + BlockFrameWord.size + $1.storedLength }
                try patch(path, at: lastWord) { $0 &+ 10 }
                message = "frame of data block 29 at byte \(lastWord) runs 10 bytes past the end of the frames"
            case .truncated:
                try truncateFile(path, to: try DiskImage.read(path).count - 17)
            }
            expectRefused(backup.files, naming: path, message: message, in: directory)
        }
    }

    @Test("a framed layout is refused for every kind but block data")
    func framedVersionOnlyForBlockData() throws {
        try withTemporaryDirectory { directory in
            let backup = try scan(
                ContentKind.mixed.content(size: 10 * Self.blockSize, seed: 43), in: directory, name: "full",
                blockSize: Self.blockSize, encoding: .zstd(level: 1))
            try patch(backup.files.regions, at: 8) { _ in 2 }
            let error = #expect(throws: BlockDeltaError.self) { try RegionListReader(path: backup.files.regions) }
            #expect(error?.description.contains("format version 2 is not supported") == true)
        }
    }
}

/// Rewrites the byte at `offset` of the file at `path` with `change` applied to it.
func patch(_ path: String, at offset: Int, _ change: (UInt8) -> UInt8) throws {
    var bytes = try DiskImage.read(path)
    bytes[offset] = change(bytes[offset])
    try DiskImage.write(bytes, to: path)
}
