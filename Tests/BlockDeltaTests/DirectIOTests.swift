import BlockDelta
import Foundation
import Logging
import Testing
import TestSupport

/// `O_DIRECT` by default on block devices, on a real loop device; the fallback where it is refused, on a
/// real ramfs (which has no direct I/O). Both need root.
@Suite("O_DIRECT reads", .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
struct DirectIOTests {
    @Test("a loop device is read with O_DIRECT by default and backs up as its file does")
    func loopDeviceDirect() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 61)
            // A multiple of 512 but not of 4096: the last O_DIRECT read is rounded up past the device's end.
            var file = SparseFile(size: (8 << 20) + 1536)
            for _ in 0..<6 {
                file.write(generator.bytes(Int.random(in: 1...(400 << 10), using: &generator)), at: Int.random(in: 0..<file.size, using: &generator))
            }
            file.write(generator.bytes(100), at: file.size - 100)
            let backing = "\(directory)/volume.dev"
            try file.create(at: backing)
            let device = try LoopDevice.attach(backing)
            defer { try? device.detach() }

            let direct = try BlockSource(path: device.path, logger: testLogger)
            #expect(direct.isBlockDevice && direct.usesDirectIO && !direct.findsHoles)
            #expect(direct.size == UInt64(file.size))
            let cached = try BlockSource(path: device.path, directIO: .never, logger: testLogger)
            #expect(!cached.usesDirectIO)

            let id = BackupID.generate()
            let configuration = ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 2)
            let fromDevice = try scan(
                source: direct, in: directory, name: "device", blockSize: 65536, backupID: id, encoding: .zstd(level: 3),
                configuration: configuration)
            let fromCache = try scan(
                source: cached, in: directory, name: "cached", blockSize: 65536, backupID: id, encoding: .zstd(level: 3),
                configuration: configuration)
            let fromFile = try scan(
                source: BlockSource(path: backing, logger: testLogger), in: directory, name: "file", blockSize: 65536,
                backupID: id, encoding: .zstd(level: 3), configuration: configuration)
            #expect(try sameFiles(fromDevice, fromFile))
            #expect(try sameFiles(fromCache, fromFile))
            #expect(fromFile.result.holeBytes > 0 && fromDevice.result.holeBytes == 0)
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [fromDevice.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == file.content)
        }
    }

    @Test("where O_DIRECT is refused (ramfs), the source is read through the page cache and says so")
    func fallbackOnRamfs() throws {
        try withTemporaryDirectory { directory in
            let mountPoint = "\(directory)/ramfs"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
            try runTool("/bin/mount", ["-t", "ramfs", "ramfs", mountPoint])
            defer { try? runTool("/bin/umount", [mountPoint]) }
            var generator = SeededGenerator(seed: 62)
            let content = DiskImage.content(size: (1 << 20) + 300, using: &generator)
            let path = "\(mountPoint)/image.raw"
            try DiskImage.write(content, to: path)

            let capture = CapturingLogHandler()
            let logger = Logger(label: "test") { _ in capture }
            let source = try BlockSource(path: path, directIO: .always, logger: logger)
            #expect(!source.usesDirectIO)
            #expect(capture.text.contains("warning O_DIRECT refused"), "\(capture.text)")
            #expect(capture.text.contains(path))
            // A file is not read with O_DIRECT unless asked for: nothing to refuse, nothing logged.
            let quiet = CapturingLogHandler()
            #expect(!(try BlockSource(path: path, logger: Logger(label: "test") { _ in quiet }).usesDirectIO))
            #expect(quiet.count == 0)

            let backup = try scan(source: source, in: directory, name: "full", blockSize: 4096, encoding: .zstd(level: 3))
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: [backup.files], to: restored, logger: testLogger)
            #expect(try DiskImage.read(restored) == content)
        }
    }

    private func runTool(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments) failed"])
        }
    }
}
