import BlockDelta
import Foundation
import Testing
import TestSupport

/// Every damaged file gives a one-line error naming it, and a restore from it writes nothing.
@Suite("Damaged backup files")
struct CorruptionTests {
    enum Damage: String, CaseIterable, CustomTestStringConvertible {
        case headerByte, recordByte, trailerChecksum, trailerCount, truncated, emptied, missing
        var testDescription: String { rawValue }
    }

    enum Target: String, CaseIterable, CustomTestStringConvertible {
        case regions, digests, data
        var testDescription: String { rawValue }
    }

    private func damage(_ path: String, _ damage: Damage) throws {
        let size = try DiskImage.read(path).count
        switch damage {
        case .headerByte: try corruptByte(of: path, at: 20)
        case .recordByte: try corruptByte(of: path, at: FormatHeader.size + 3)
        case .trailerChecksum: try corruptByte(of: path, at: -1)
        case .trailerCount: try corruptByte(of: path, at: -40)
        case .truncated: try truncateFile(path, to: size - 17)
        case .emptied: try truncateFile(path, to: 0)
        case .missing: try FileManager.default.removeItem(atPath: path)
        }
    }

    @Test("damaged backup files are refused by name", arguments: Target.allCases, Damage.allCases)
    func damagedBackupFile(target: Target, kind: Damage) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 21)
            let content = DiskImage.content(size: 90_000, using: &generator)
            let full = try scan(content, in: directory, name: "full", blockSize: 4096)
            let path = [Target.regions: full.files.regions, .digests: full.files.digests, .data: full.files.data][target]!
            try damage(path, kind)
            let restored = "\(directory)/restored.img"
            let error = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.restore(chain: [full.files], to: restored, logger: testLogger)
            }
            let line = error?.description ?? ""
            #expect(!line.contains("\n"))
            #expect(line.contains(path))
            #expect(!FileManager.default.fileExists(atPath: restored))
            #expect(!FileManager.default.fileExists(atPath: restored + ".osbackup-partial"))
            #expect(throws: BlockDeltaError.self) { try ChainRestorer.verify(chain: [full.files]) }
        }
    }

    @Test("a data block that does not match its digest is found by verify")
    func flippedDataBlock() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 22)
            let content = generator.bytes(40_000)
            let full = try scan(content, in: directory, name: "full", blockSize: 4096)
            // Change a data byte and keep the frame valid: only the per-block digest can catch it.
            try corruptByte(of: full.files.data, at: FormatHeader.size + 5000)
            let error = #expect(throws: BlockDeltaError.self) { try ChainRestorer.verify(chain: [full.files]) }
            #expect(error?.description.contains("does not match its recorded SHA-256") == true)
            #expect(error?.description.contains(full.files.data) == true)
        }
    }

    @Test("damaged hash maps are refused by name", arguments: Damage.allCases)
    func damagedMap(kind: Damage) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 23)
            let full = try scan(DiskImage.content(size: 50_000, using: &generator), in: directory, name: "full", blockSize: 4096)
            try damage(full.map, kind)
            let error = #expect(throws: BlockDeltaError.self) { try HashMapReader(path: full.map) }
            #expect(error?.description.hasPrefix(full.map) == true)
        }
    }

    @Test("a block device smaller than the volume is refused before anything is written",
          .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
    func smallDeviceRefused() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 24)
            let content = DiskImage.content(size: 2 << 20, using: &generator)
            let full = try scan(content, in: directory, name: "full", blockSize: 4096)
            let backing = "\(directory)/small.dev"
            let marker = generator.bytes(1 << 20)
            try DiskImage.write(marker, to: backing)
            let device = try LoopDevice.attach(backing)
            defer { try? device.detach() }
            let error = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.restore(chain: [full.files], to: device.path, logger: testLogger)
            }
            #expect(error?.description.contains("nothing was written") == true)
            try device.detach()
            #expect(try DiskImage.read(backing) == marker)
        }
    }
}

/// Crafted files whose checksums hold but whose numbers are absurd: refused with an error, never a crash.
@Suite("Crafted backup files")
struct CraftedFileTests {
    @Test("a region whose end would overflow is refused by name")
    func overflowingRegion() throws {
        try withTemporaryDirectory { directory in
            let id = BackupID.generate()
            let descriptor = try BackupDescriptor(
                geometry: VolumeGeometry(blockSize: 4096, volumeSize: 1 << 20), backupID: id, parentID: nil, fullID: id, level: .full,
                volumeID: "crafted")
            let path = "\(directory)/crafted.bmp"
            let writer = try FormatFileWriter(path: path, header: FormatHeader(kind: .regionList, descriptor: descriptor))
            let record = Region(firstBlock: UInt64.max - 2, blockCount: 5, kind: .data).encoded()
            try record.withUnsafeBytes { bytes in try writer.append(bytes) }
            _ = try writer.finish(recordCount: 1)
            let error = #expect(throws: BlockDeltaError.self) { _ = try RegionListReader(path: path).validate() }
            #expect(error?.description.contains(path) == true, "\(String(describing: error))")
        }
    }

    @Test("a volume size past 2^62 bytes is refused")
    func hugeVolume() {
        #expect(throws: BlockDeltaError.self) { _ = try VolumeGeometry(blockSize: 4096, volumeSize: UInt64.max) }
        #expect((try? VolumeGeometry(blockSize: 4096, volumeSize: 1 << 62)) != nil)
    }
}
