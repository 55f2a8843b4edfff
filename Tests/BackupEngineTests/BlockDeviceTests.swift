import BackupEngine
import BlockDelta
import Foundation
import Testing
import TestSupport

/// The engine on real loop block devices: size by ioctl, O_DIRECT reads, restore onto a device.
@Suite("Loop block devices", .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
struct BlockDeviceTests {
    @Test("back up a loop device (O_DIRECT by default), change it, back up again, restore onto another device")
    func deviceRoundTrip() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 31)
            let size = 8 << 20
            var content = DiskImage.content(size: size, using: &generator)
            let sourceBacking = "\(directory)/source.dev"
            try DiskImage.write(content, to: sourceBacking)
            let source = try LoopDevice.attach(sourceBacking)
            defer { try? source.detach() }
            func backup(_ level: BackupLevel) throws -> VolumeBackupRecord {
                try ImageBackupJob.backup(
                    ImageBackupRequest(
                        source: source.path, stateDirectory: "\(directory)/state", repositoryDirectory: "\(directory)/repo",
                        level: level, blockSize: 65536, volumeID: "loop-volume"),
                    logger: testLogger
                ).record
            }
            let full = try backup(.full)
            #expect(full.volumeSize == UInt64(size))
            // Change the device through the device, as a guest would.
            let device = try FileHandle(forUpdating: URL(fileURLWithPath: source.path))
            let patch = generator.bytes(200_000)
            try device.seek(toOffset: 3_000_000)
            try device.write(contentsOf: Data(patch))
            try device.synchronize()
            try device.close()
            content.replaceSubrange(3_000_000..<3_200_000, with: patch)
            let incremental = try backup(.incremental)
            #expect(incremental.level == "incremental")
            #expect(incremental.dataBlocks + incremental.zeroBlocks <= 5)

            let targetBacking = "\(directory)/target.dev"
            try DiskImage.write(generator.bytes(size), to: targetBacking)  // garbage the restore must overwrite
            let target = try LoopDevice.attach(targetBacking)
            defer { try? target.detach() }
            _ = try ImageBackupJob.restore(
                repositoryDirectory: "\(directory)/repo", backup: nil, to: target.path, logger: testLogger)
            try target.detach()
            #expect(try DiskImage.read(targetBacking) == content)
        }
    }
}
