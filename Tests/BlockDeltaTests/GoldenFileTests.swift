import BlockDelta
import CZstd
import Foundation
import Testing
import TestSupport

/// The byte-level formats are pinned by golden files: a fixed image backed up with fixed ids must give
/// exactly these bytes, and the readers must accept them. Set OSBACKUP_RECORD_GOLDEN=1 to rewrite them
/// after a deliberate format change (and bump the format version).
@Suite("Golden files")
struct GoldenFileTests {
    static let fullID = BackupID("01890000-0000-7000-8000-000000000001")!
    static let incrementalID = BackupID("01890000-0000-7000-8000-000000000002")!

    /// Five 4 KiB blocks and a 100-byte tail: data, zero, data, data, zero, short data.
    static func day1() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 5 * 4096 + 100)
        for index in 0..<4096 { bytes[index] = UInt8(index % 251) }
        for index in (2 * 4096)..<(4 * 4096) { bytes[index] = UInt8((index * 7) % 253) | 1 }
        for index in (5 * 4096)..<bytes.count { bytes[index] = 0x41 }
        return bytes
    }

    /// Day 2: block 1 gets data, block 2 becomes zero, the tail changes.
    static func day2() -> [UInt8] {
        var bytes = day1()
        for index in 4096..<8192 { bytes[index] = 0x42 }
        for index in 8192..<12288 { bytes[index] = 0 }
        bytes[bytes.count - 1] = 0x43
        return bytes
    }

    /// The compressed pair (`zfull`, `zincr`, zstd level 3): day 1 and day 2 with one random block each, so
    /// that both frame kinds occur (block 2 of day 1 and block 1 of day 2 are stored raw).
    static func compressedDay1() -> [UInt8] {
        var bytes = day1()
        var generator = SeededGenerator(seed: 8)
        bytes.replaceSubrange((2 * 4096)..<(3 * 4096), with: generator.bytes(4096))
        return bytes
    }

    static func compressedDay2() -> [UInt8] {
        var bytes = day2()
        var generator = SeededGenerator(seed: 9)
        bytes.replaceSubrange(4096..<8192, with: generator.bytes(4096))
        return bytes
    }

    /// The libzstd that recorded the compressed golden files (1.5.4, Debian 12): another release may
    /// compress to other (equally valid) bytes, so only the readers are pinned elsewhere.
    static let recordingZstdVersion: UInt32 = 10504

    static let names = [
        "full.bmp", "full.bmpsha", "full.bvmdk", "full.map", "incr.bmp", "incr.bmpsha", "incr.bvmdk", "incr.map",
        "zfull.bmp", "zfull.bmpsha", "zfull.bvmdk", "zfull.map", "zincr.bmp", "zincr.bmpsha", "zincr.bvmdk", "zincr.map",
    ]

    private func produce(in directory: String) throws {
        let full = try scan(Self.day1(), in: directory, name: "full", blockSize: 4096, backupID: Self.fullID)
        _ = try scan(
            Self.day2(), in: directory, name: "incr", blockSize: 4096, backupID: Self.incrementalID,
            reference: HashMapReader(path: full.map))
        let compressed = try scan(
            Self.compressedDay1(), in: directory, name: "zfull", blockSize: 4096, backupID: Self.fullID,
            encoding: .zstd(level: 3))
        _ = try scan(
            Self.compressedDay2(), in: directory, name: "zincr", blockSize: 4096, backupID: Self.incrementalID,
            reference: HashMapReader(path: compressed.map), encoding: .zstd(level: 3))
    }

    private var goldenDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path
    }

    @Test("writers produce the golden bytes")
    func writersMatchGolden() throws {
        try withTemporaryDirectory { directory in
            try produce(in: directory)
            let record = ProcessInfo.processInfo.environment["OSBACKUP_RECORD_GOLDEN"] == "1"
            let sameZstd = ZSTD_versionNumber() == Self.recordingZstdVersion
            for name in Self.names where sameZstd || !name.hasSuffix(".bvmdk") || !name.hasPrefix("z") {
                let produced = try DiskImage.read("\(directory)/\(name)")
                let goldenPath = "\(goldenDirectory)/\(name)"
                if record { try DiskImage.write(produced, to: goldenPath) }
                let golden = try DiskImage.read(Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Golden")!)
                #expect(produced == golden, "\(name) differs from its golden file")
            }
        }
    }

    @Test("readers accept the golden files and restore both days")
    func readersAcceptGolden() throws {
        let folder = Bundle.module.resourcePath! + "/Golden"
        func files(_ name: String) -> VolumeBackupFiles {
            VolumeBackupFiles(regions: "\(folder)/\(name).bmp", digests: "\(folder)/\(name).bmpsha", data: "\(folder)/\(name).bvmdk")
        }
        let incremental = try VolumeBackupReader(files: files("incr"))
        #expect(incremental.descriptor.parentID == Self.fullID)
        #expect(incremental.summary.dataBlocks == 2)  // block 1 and the tail
        #expect(incremental.summary.zeroBlocks == 1)  // block 2
        #expect(try HashMapReader(path: "\(folder)/incr.map").descriptor.backupID == Self.incrementalID)
        try withTemporaryDirectory { directory in
            _ = try ChainRestorer.restore(chain: [files("full")], to: "\(directory)/d1", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/d1") == Self.day1())
            _ = try ChainRestorer.restore(chain: [files("full"), files("incr")], to: "\(directory)/d2", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/d2") == Self.day2())
        }
    }

    @Test("readers accept the compressed golden files, with both frame kinds, and restore both days")
    func readersAcceptCompressedGolden() throws {
        let folder = Bundle.module.resourcePath! + "/Golden"
        func files(_ name: String) -> VolumeBackupFiles {
            VolumeBackupFiles(regions: "\(folder)/\(name).bmp", digests: "\(folder)/\(name).bmpsha", data: "\(folder)/\(name).bvmdk")
        }
        let full = try VolumeBackupReader(files: files("zfull"))
        #expect(full.data.header.layout == .framed)
        let words = try frameWords(of: files("zfull").data)
        // Blocks 0, 2, 3 and the tail are data; block 2 is random and stored raw.
        #expect(words.map(\.isCompressed) == [true, false, true, true])
        #expect(try frameWords(of: files("zincr").data).map(\.isCompressed) == [false, true])
        try withTemporaryDirectory { directory in
            _ = try ChainRestorer.restore(chain: [files("zfull")], to: "\(directory)/d1", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/d1") == Self.compressedDay1())
            _ = try ChainRestorer.restore(chain: [files("zfull"), files("zincr")], to: "\(directory)/d2", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/d2") == Self.compressedDay2())
        }
    }
}
