import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

/// A restore request on the test cloud.
private func restoreRequest(_ directory: String, _ running: RunningEmulator, target: CloudRestoreRequest.Target) -> CloudRestoreRequest {
    CloudRestoreRequest(
        target: target, stateDirectory: "\(directory)/state", proxyServerID: EmulatorSeed.serverID("backup-proxy"),
        devices: DeviceLocator(deviceDirectory: running.deviceDirectory, timeout: .seconds(10)), parallel: 2,
        parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1), serverTimeout: .seconds(30))
}

/// The first `count` bytes of a file.
private func prefix(_ path: String, _ count: Int) throws -> Data {
    let handle = try #require(FileHandle(forReadingAtPath: path))
    defer { try? handle.close() }
    return try handle.read(upToCount: count) ?? Data()
}

/// A Full, a change in the web server's root volume, an Incremental: returns the repository and the
/// contents of the web root as the Incremental saved it.
private func backUpTwice(_ running: RunningEmulator, _ cloud: CloudServices, _ directory: String) async throws -> (String, Data) {
    let repo = "\(directory)/repo"
    let full = try await runJob(request(directory, running, level: .full), cloud, repository: repo)
    #expect(full.allSaved)
    let webRoot = running.volumeFile(volumeID: EmulatorSeed.volumeID("root/../x"))
    try change(running, volumeID: EmulatorSeed.volumeID("root/../x"), at: 2 << 20, Data("changed between the Full and the Incremental".utf8))
    let incremental = try await runJob(request(directory, running, level: .incremental), cloud, repository: repo)
    #expect(incremental.allSaved)
    return (repo, try Data(contentsOf: URL(fileURLWithPath: webRoot)))
}

@Suite("Cloud restores on the emulator")
struct CloudRestoreTests {
    @Test("--to-cloud into the servers' project: new volumes byte-exact, named and sized from the .conf, no osbackup tag, nothing left behind")
    func toNewVolumes() async throws {
        try await withCloudJob { running, cloud, directory in
            let (repo, webRootAfterChange) = try await backUpTwice(running, cloud, directory)
            let plan = try RestorePlan.make(
                repository: BackupRepository(directory: repo, create: false), jobID: nil,
                servers: [EmulatorSeed.serverID("web/1 ..\u{202E}\nevil")], volumes: [EmulatorSeed.volumeID("loose")])
            #expect(plan.volumes.count == 3)
            let tenant = EmulatorSeed.projectID("tenant")
            let report = try await OpenStackTransport.withTransport { transport in
                let scoped = try await connectAdmin(running, transport: transport, projectID: tenant, logger: testLogger)
                #expect(scoped.projectID == tenant)
                return try await CloudRestoreJob.run(
                    restoreRequest(directory, running, target: .newVolumes), plan: plan, cloud: scoped, logger: testLogger)
            }
            #expect(report.volumes.count == 3)
            #expect(report.servers.isEmpty)
            let inventory = try running.inventory()
            for restored in report.volumes {
                #expect(restored.volumeID != restored.originalVolumeID)
                let volume = try #require(inventory.volumes.first { $0.id == restored.volumeID })
                let original = try #require(inventory.volumes.first { $0.id == restored.originalVolumeID })
                #expect(volume.projectID == tenant)
                #expect(volume.size == original.size, "the .conf's Cinder size")
                #expect(volume.name == "restored-" + (original.name ?? ""))
                #expect(volume.status == "available")
                #expect(volume.metadata[CloudTags.job] == nil && volume.metadata[CloudTags.proxy] == nil && volume.metadata["osbackup_request"] == nil)
                #expect(volume.metadata[CloudTags.restoredFrom] == restored.originalVolumeID)
                let originalBytes =
                    restored.originalVolumeID == EmulatorSeed.volumeID("root/../x")
                    ? webRootAfterChange : try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: restored.originalVolumeID)))
                #expect(try prefix(running.volumeFile(volumeID: restored.volumeID), originalBytes.count) == originalBytes)
            }
            try expectNoDebris(running)
        }
    }

    @Test("--new-server: boot volume at index 0, flavor and networks from the .conf, ACTIVE, no tags left; the restored disks are byte-exact")
    func newServer() async throws {
        try await withCloudJob { running, cloud, directory in
            let (repo, webRootAfterChange) = try await backUpTwice(running, cloud, directory)
            let webID = EmulatorSeed.serverID("web/1 ..\u{202E}\nevil")
            // The server by the name its .conf recorded (awkward as it is); an unknown one is refused by name.
            let repository = try BackupRepository(directory: repo, create: false)
            let plan = try RestorePlan.make(repository: repository, jobID: nil, servers: ["web/1 ..\u{202E}\nevil"], volumes: [])
            #expect(Set(plan.volumes.map(\.record.serverID)) == [webID])
            let unknown = #expect(throws: BlockDeltaError.self) {
                try RestorePlan.make(repository: repository, jobID: nil, servers: ["web-2"], volumes: [])
            }
            #expect(unknown?.description.contains("no server 'web-2'") == true)
            let report = try await CloudRestoreJob.run(
                restoreRequest(directory, running, target: .newServer(.init(name: "web-restored"))), plan: plan, cloud: cloud,
                logger: testLogger)
            let newID = try #require(report.servers[webID])
            let server = try await cloud.compute.server(id: newID)
            #expect(server.status == "ACTIVE")
            #expect(server.name == "web-restored")
            #expect(server.metadata?[CloudTags.job] == nil)
            #expect(server.flavor?.originalName == "m1.small" || server.flavor?.id == EmulatorSeed.flavorID("m1.small"))
            let interfaces = try await cloud.compute.interfaces(serverID: newID)
            #expect(interfaces.map(\.networkID) == [EmulatorSeed.networkID("private")])
            let attachments = try await cloud.compute.volumeAttachments(serverID: newID)
            #expect(Set(attachments.map(\.volumeID)) == Set(report.volumes.map(\.volumeID)))
            let rootCopy = try #require(report.volumes.first { $0.originalVolumeID == EmulatorSeed.volumeID("root/../x") })
            let rootVolume = try await cloud.blockStorage.volume(id: rootCopy.volumeID)
            #expect(rootVolume.isBootable)
            #expect(attachments.first { $0.volumeID == rootCopy.volumeID }?.device == "/dev/vda", "the boot volume comes first")
            #expect(try prefix(running.volumeFile(volumeID: rootCopy.volumeID), webRootAfterChange.count) == webRootAfterChange)
            try expectNoDebris(running)
        }
    }

    @Test("a new server that cannot be made (unknown flavor) leaves no server and no restored volume behind")
    func newServerFailureCleansUp() async throws {
        try await withCloudJob { running, cloud, directory in
            let (repo, _) = try await backUpTwice(running, cloud, directory)
            let dbID = EmulatorSeed.serverID("db-1")
            let plan = try RestorePlan.make(
                repository: BackupRepository(directory: repo, create: false), jobID: nil, servers: [dbID], volumes: [])
            let before = try running.inventory()
            let error = await #expect(throws: BackupError.self) {
                _ = try await CloudRestoreJob.run(
                    restoreRequest(directory, running, target: .newServer(.init(flavor: "no-such-flavor"))), plan: plan, cloud: cloud,
                    logger: testLogger)
            }
            #expect(error?.kind == .notFound)
            #expect(error?.description.contains("no-such-flavor") == true)
            let after = try running.inventory()
            #expect(after.volumes.count == before.volumes.count, "restored volumes deleted: \(after.volumes.map(\.name))")
            #expect(after.servers.count == before.servers.count)
            try expectNoDebris(running)
        }
    }

    @Test("--in-place is refused while the volume is attached, and rewrites an unattached volume byte-exact")
    func inPlace() async throws {
        try await withCloudJob { running, cloud, directory in
            let (repo, _) = try await backUpTwice(running, cloud, directory)
            let repository = try BackupRepository(directory: repo, create: false)
            let attached = try RestorePlan.make(
                repository: repository, jobID: nil, servers: [], volumes: [EmulatorSeed.volumeID("web-data")])
            let refusal = await #expect(throws: BackupError.self) {
                _ = try await CloudRestoreJob.run(
                    restoreRequest(directory, running, target: .inPlace), plan: attached, cloud: cloud, logger: testLogger)
            }
            #expect(refusal?.kind == .busy)
            #expect(refusal?.description.contains(EmulatorSeed.serverID("web/1 ..\u{202E}\nevil")) == true)

            let loose = EmulatorSeed.volumeID("loose")
            let file = running.volumeFile(volumeID: loose)
            let saved = try Data(contentsOf: URL(fileURLWithPath: file))
            try change(running, volumeID: loose, at: 0, Data(repeating: 0xAB, count: 200_000))
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) != saved)
            let plan = try RestorePlan.make(repository: repository, jobID: nil, servers: [], volumes: [loose])
            let report = try await CloudRestoreJob.run(
                restoreRequest(directory, running, target: .inPlace), plan: plan, cloud: cloud, logger: testLogger)
            #expect(report.volumes.map(\.volumeID) == [loose])
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == saved)
            let volume = try await cloud.blockStorage.volume(id: loose)
            #expect(volume.status == "available" && volume.attachments.isEmpty)
            #expect(volume.metadata?[CloudTags.job] == nil)
            try expectNoDebris(running)
        }
    }

    @Test("a restore cancelled midway (SIGTERM) deletes the volumes it created and throws a cancellation")
    func cancelledRestore() async throws {
        try await withCloudJob(transitionDelay: 0.3) { running, cloud, directory in
            let repo = "\(directory)/repo"
            _ = try await runJob(request(directory, running, level: .full), cloud, repository: repo)
            let plan = try RestorePlan.make(repository: BackupRepository(directory: repo, create: false), jobID: nil, servers: [], volumes: [])
            let restore = Task {
                try await CloudRestoreJob.run(restoreRequest(directory, running, target: .newVolumes), plan: plan, cloud: cloud, logger: testLogger)
            }
            var created = false
            for _ in 0..<400 where !created {
                created = try running.inventory().volumes.contains { ($0.name ?? "").hasPrefix("restored-") }
                if !created { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(created, "the restore began creating volumes")
            restore.cancel()
            let error = await #expect(throws: BackupError.self) { _ = try await restore.value }
            #expect(error?.kind == .cancelled, "\(String(describing: error))")
            #expect(try running.inventory().volumes.allSatisfy { !($0.name ?? "").hasPrefix("restored-") })
            try expectNoDebris(running)
        }
    }
}
