import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import OpenStackClient
import Testing
import TestSupport

/// Writes `text` into the seed volume `name` at `offset`.
private func change(_ running: RunningEmulator, volume name: String, at offset: UInt64, _ text: String) throws {
    try change(running, volumeID: EmulatorSeed.volumeID(name), at: offset, Data(text.utf8))
}

@Suite("Cloud backup levels and real block devices")
struct CloudLevelTests {
    @Test("Differentials build on the Full: each stores every change since it, and restores byte-exact from a chain of two")
    func differential() async throws {
        try await withCloudJob { running, cloud, directory in
            let repo = "\(directory)/repo"
            let selection = TargetSelection(servers: [.name("db-1")], allProjects: true)
            let full = try await runJob(request(directory, running, level: .full, selection: selection), cloud, repository: repo)
            try change(running, volume: "db-1-root", at: 1 << 20, "first change")
            let first = try await runJob(request(directory, running, level: .differential, selection: selection), cloud, repository: repo)
            try change(running, volume: "db-1-root", at: 3 << 20, "second change")
            let second = try await runJob(request(directory, running, level: .differential, selection: selection), cloud, repository: repo)
            #expect(first.volumes.map(\.level) == ["differential"] && second.volumes.map(\.level) == ["differential"])
            #expect(first.volumes[0].dataBytes == 65536)
            #expect(second.volumes[0].dataBytes == 2 * 65536, "both changes since the Full")
            let repository = try BackupRepository(directory: repo, create: false)
            let secondID = try #require(BackupID(second.jobID))
            let record = try #require(try repository.manifest(ofJob: secondID).volumes.first)
            #expect(record.parentID == full.volumes[0].backupID)
            let restored = try RestoreToDirectory.run(
                repository: repository, jobID: nil, servers: [], volumes: [], target: "\(directory)/out", logger: testLogger)
            #expect(restored.map(\.chainLength) == [2])
            let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: EmulatorSeed.volumeID("db-1-root"))))
            #expect(try Data(contentsOf: URL(fileURLWithPath: restored[0].path)) == original)
            try expectNoDebris(running)
        }
    }

    @Test(
        "on loop devices: Full, change, Incremental, restore to new volumes through the proxy's block devices, byte-exact; no loop device left",
        .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
    func loopDevices() async throws {
        try await withCloudJob(usesLoopDevices: true) { running, cloud, directory in
            let repo = "\(directory)/repo"
            let selection = TargetSelection(servers: [.name("web/1 ..\u{202E}\nevil")], allProjects: true)
            let full = try await runJob(request(directory, running, level: .full, selection: selection, parallel: 2), cloud, repository: repo)
            #expect(full.allSaved, "\(full.volumes.compactMap(\.error))")
            try change(running, volume: "web-data", at: 100_000, "through a loop device")
            let incremental = try await runJob(
                request(directory, running, level: .incremental, selection: selection, parallel: 2), cloud, repository: repo)
            #expect(incremental.allSaved)
            let plan = try RestorePlan.make(repository: BackupRepository(directory: repo, create: false), jobID: nil, servers: [], volumes: [])
            let report = try await CloudRestoreJob.run(
                CloudRestoreRequest(
                    target: .newVolumes, stateDirectory: "\(directory)/state", proxyServerID: EmulatorSeed.serverID("backup-proxy"),
                    devices: DeviceLocator(deviceDirectory: running.deviceDirectory, timeout: .seconds(10))),
                plan: plan, cloud: cloud, logger: testLogger)
            #expect(report.volumes.count == 2)
            for volume in report.volumes {
                let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.originalVolumeID)))
                let copy = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                #expect(copy == original, "\(volume.originalVolumeID)")
            }
            try expectNoDebris(running)
            let (_, loops) = try await runProgram("/usr/sbin/losetup", ["-a"])
            // Only the proxy's own root disk stays attached, as a loop device.
            let proxyRoot = EmulatorSeed.volumeID("proxy-root")
            let left = loops.split(separator: "\n").filter { $0.contains(directory) && !$0.contains(proxyRoot) }
            #expect(left.isEmpty, "loop devices left: \(left)")
        }
    }

    @Test("estimate: levels from the maps, last stored sizes from the repository, and nothing created in the cloud")
    func estimate() async throws {
        try await withCloudJob { running, cloud, directory in
            let repo = "\(directory)/repo"
            let selection = TargetSelection(servers: [.name("db-1")], unattachedVolumes: true, allProjects: true)
            let before = try await CloudEstimate.run(
                selection: selection, level: .incremental, cloud: cloud, proxyServerID: EmulatorSeed.serverID("backup-proxy"),
                stateDirectory: "\(directory)/state", repository: nil)
            #expect(before.volumes.map(\.volumeID).sorted() == [EmulatorSeed.volumeID("db-1-root"), EmulatorSeed.volumeID("loose")].sorted())
            #expect(before.volumes.allSatisfy { $0.level == "full" && $0.fallbackReason != nil })
            let full = try await runJob(request(directory, running, level: .full, selection: selection), cloud, repository: repo)
            let after = try await CloudEstimate.run(
                selection: selection, level: .incremental, cloud: cloud, proxyServerID: EmulatorSeed.serverID("backup-proxy"),
                stateDirectory: "\(directory)/state", repository: BackupRepository(directory: repo, create: false))
            for volume in after.volumes {
                #expect(volume.level == "incremental" && volume.fallbackReason == nil)
                #expect(volume.lastLevel == "full")
                #expect(volume.lastStoredBytes == full.volumes.first { $0.volumeID == volume.volumeID }?.bytesStored)
            }
            // The repository lost the Full: an Incremental would have no parent, so the estimate says Full and why.
            let lost = try await CloudEstimate.run(
                selection: selection, level: .incremental, cloud: cloud, proxyServerID: EmulatorSeed.serverID("backup-proxy"),
                stateDirectory: "\(directory)/state", repository: BackupRepository(directory: "\(directory)/empty", create: true))
            #expect(lost.volumes.allSatisfy { $0.level == "full" && $0.fallbackReason?.contains("no longer stored") == true })
            try expectNoDebris(running)
        }
    }

    @Test("a volume without a name: only its UUID in the namespace, restored to a folder and to a new volume")
    func unnamedVolume() async throws {
        let seed = cloudSeed.replacingOccurrences(of: "  - name: loose\n", with: "  - name: loose\n    unnamed: true\n")
        #expect(seed != cloudSeed)
        try await withCloudJob(seed: seed) { running, cloud, directory in
            let loose = EmulatorSeed.volumeID("loose")
            #expect(try await cloud.blockStorage.volume(id: loose).name == nil)
            let repo = "\(directory)/repo"
            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(volumes: [loose], allProjects: true)), cloud,
                repository: repo)
            #expect(report.allSaved)
            let repository = try BackupRepository(directory: repo, create: false)
            let job = try repository.latestJob()
            let folder = "@openstack/cinder/volume/\(loose)"
            #expect(job.volumes.map(\.dataFile) == ["\(folder)/\(loose).bvmdk"])
            #expect(job.files.contains("@openstack/cinder/volume/\(loose).name"))
            let restored = try RestoreToDirectory.run(
                repository: repository, jobID: nil, servers: [], volumes: [], target: "\(directory)/out", logger: testLogger)
            #expect(restored.map(\.path) == ["\(directory)/out/\(folder)/\(loose).raw"])
            #expect(FileManager.default.fileExists(atPath: "\(directory)/out/@openstack/cinder/volume/\(loose).name"))
            let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: loose)))
            #expect(try Data(contentsOf: URL(fileURLWithPath: restored[0].path)) == original)

            let plan = try RestorePlan.make(repository: repository, jobID: nil, servers: [], volumes: [])
            let cloudRestore = try await CloudRestoreJob.run(
                CloudRestoreRequest(
                    target: .newVolumes, stateDirectory: "\(directory)/state", proxyServerID: EmulatorSeed.serverID("backup-proxy"),
                    devices: DeviceLocator(deviceDirectory: running.deviceDirectory, timeout: .seconds(10))),
                plan: plan, cloud: cloud, logger: testLogger)
            let copy = try #require(cloudRestore.volumes.first)
            #expect(copy.name == "restored-\(loose)", "the old UUID after the prefix")
            #expect(try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: copy.volumeID))) == original)
            try expectNoDebris(running)
        }
    }
}
