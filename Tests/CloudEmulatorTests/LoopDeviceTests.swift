import CloudEmulator
import Foundation
import Testing
import TestSupport

/// `--loop-devices`: the proxy sees an attached volume as a real block device.
@Suite("Attach as a loop device", .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
struct LoopDeviceTests {
    @Test("the by-id link leads to a loop block device over the volume; writes reach the volume; detach removes it")
    func loopAttach() async throws {
        try await withTestCloud(usesLoopDevices: true) { cloud in
            let admin = try await cloud.token()
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes", project: cloud.adminProjectID), token: admin,
                json: #"{"volume":{"size":2,"name":"loop-tmp"}}"#)
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(id, status: "available", token: admin, project: cloud.adminProjectID)
            let path = "/compute/v2.1/servers/\(cloud.proxyID)/os-volume_attachments"
            #expect(try await cloud.send("POST", path, token: admin, json: #"{"volumeAttachment":{"volumeId":"\#(id)"}}"#).status == 200)
            try await cloud.waitForVolume(id, status: "in-use", token: admin, project: cloud.adminProjectID)

            let link = cloud.running.devicePath(volumeID: id)
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: link)
            #expect(target.hasPrefix("/dev/loop"))
            var info = stat()
            #expect(stat(link, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFBLK, "a real block device")
            let device = try #require(FileHandle(forWritingAtPath: link))
            try device.seek(toOffset: 1 << 20)
            try device.write(contentsOf: Data("through a loop device".utf8))
            try device.synchronize()
            try device.close()
            let volume = try #require(FileHandle(forReadingAtPath: cloud.running.volumeFile(volumeID: id)))
            try volume.seek(toOffset: 1 << 20)
            #expect(try volume.read(upToCount: 21) == Data("through a loop device".utf8))
            try volume.close()

            #expect(try await cloud.send("DELETE", "\(path)/\(id)", token: admin).status == 202)
            try await cloud.waitForVolume(id, status: "available", token: admin, project: cloud.adminProjectID)
            #expect(!FileManager.default.fileExists(atPath: link))
            let loopName = URL(fileURLWithPath: target).lastPathComponent
            #expect(!FileManager.default.fileExists(atPath: "/sys/block/\(loopName)/loop/backing_file"), "loop device detached")
        }
    }
}

/// The emulator's state runs on its own thread, off Swift's cooperative pool.
@Suite("Emulator threads")
struct EmulatorThreadTests {
    @Test("the state actor runs on a thread named osb-emulator while the emulator serves")
    func ownThread() async throws {
        try await withTestCloud { cloud in
            _ = try await cloud.token()
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
            let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
            #expect(names.contains { $0.hasPrefix("osb-emulator") }, "\(names)")
        }
    }
}
