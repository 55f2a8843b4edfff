import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

/// A small cloud (MiB sizes): the proxy in `admin`, two tenant servers with awkward names, a loose volume.
private let cloudSeed = """
    projects:
      - name: admin
      - name: tenant
        quota: {volumes: 30, snapshots: 30, gigabytes: 1000}
    users:
      - name: admin
        password: admin-secret
        roles: {admin: [admin], tenant: [admin]}
        default_project: admin
        clouds_yaml: true
    flavors:
      - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
    networks:
      - {name: private}
    servers:
      - name: backup-proxy
        project: admin
        flavor: m1.small
        proxy: true
        max_disk_devices: 2
        volumes:
          - {name: proxy-root, size: 4}
      - name: "web/1 ..\\u202E\\nevil"
        project: tenant
        flavor: m1.small
        networks: [private]
        volumes:
          - name: "root/../x"
            size: 8
            content: [{text: "root of web\\n", length: 64K}, {zero: 1M}, {random: 512K, seed: 7}]
          - name: web-data
            size: 4
            content: [{random: 256K, seed: 8}]
      - name: db-1
        project: tenant
        flavor: m1.small
        volumes:
          - name: db-1-root
            size: 4
            content: [{random: 1M, seed: 9}]
    volumes:
      - name: loose
        project: tenant
        size: 2
        content: [{text: "loose volume\\n", length: 4K}]
    """

/// Runs `body` with the emulator up, a connected admin client and a state/repository folder.
private func withCloudJob(
    _ body: (RunningEmulator, CloudServices, String) async throws -> Void
) async throws {
    try await withTemporaryDirectory { directory in
        let configuration = EmulatorConfiguration(
            stateDirectory: "\(directory)/cloud", transitionDelay: 0.02, sizeUnit: .mebibyte, usesLoopDevices: false)
        let seed = try EmulatorSeed.parse(yaml: cloudSeed)
        var quiet = Logger(label: "osbackup.cloud.test")
        quiet.logLevel = .warning
        try await withRunningEmulator(configuration: configuration, seed: seed, logger: quiet) { running in
            try await OpenStackTransport.withTransport { transport in
                let cloud = CloudConfiguration(
                    authURL: running.authURL,
                    credentials: .password(
                        user: UserReference(name: "admin", domainName: "Default"), password: Secret("admin-secret"),
                        project: ProjectReference(name: "admin", domainName: "Default")),
                    regionName: running.region)
                let session = KeystoneSession(configuration: cloud, transport: transport, logger: quiet)
                let services = try await CloudServices.connect(
                    session: session, waitPolicy: StatusWaitPolicy(timeout: .seconds(30), initialInterval: .milliseconds(20)))
                try await body(running, services, directory)
            }
        }
    }
}

/// Asserts that the cloud holds no osbackup resource and nothing of osbackup attached to the proxy.
private func expectNoDebris(_ running: RunningEmulator, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inventory = try running.inventory()
    #expect(inventory.snapshots.isEmpty, "snapshots left: \(inventory.snapshots)", sourceLocation: sourceLocation)
    let temporary = inventory.volumes.filter { $0.metadata[CloudTags.job] != nil || ($0.name ?? "").hasPrefix("osbackup-") }
    #expect(temporary.isEmpty, "temporary volumes left: \(temporary)", sourceLocation: sourceLocation)
    let proxyID = EmulatorSeed.serverID("backup-proxy")
    let proxyAttachments = inventory.attachments.filter { $0.serverID == proxyID && $0.volumeID != EmulatorSeed.volumeID("proxy-root") }
    #expect(proxyAttachments.isEmpty, "left attached to the proxy: \(proxyAttachments)", sourceLocation: sourceLocation)
}

private func request(_ directory: String, _ running: RunningEmulator, level: BackupLevel, selection: TargetSelection = .init(unattachedVolumes: true, allProjects: true), parallel: Int = 4) -> CloudBackupRequest {
    CloudBackupRequest(
        selection: selection, level: level, stateDirectory: "\(directory)/state", proxyServerID: EmulatorSeed.serverID("backup-proxy"),
        devices: DeviceLocator(deviceDirectory: running.deviceDirectory, timeout: .seconds(10)), parallel: parallel,
        parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1))
}

private func runJob(_ request: CloudBackupRequest, _ cloud: CloudServices, repository: String) async throws -> CloudBackupReport {
    let jobID = BackupID.generate()
    let sink = try DirectorySink(repository: BackupRepository(directory: repository, create: true), jobID: jobID)
    return try await CloudBackupJob.run(request, cloud: cloud, sink: sink, jobID: jobID, logger: testLogger)
}

@Suite("Cloud backups on the emulator")
struct CloudBackupTests {
    @Test("Full then Incremental of every server and the loose volume restore byte-exact, and nothing is left behind")
    func fullIncrementalRestore() async throws {
        try await withCloudJob { running, cloud, directory in
            let repo = "\(directory)/repo"
            // max_disk_devices 2 on the proxy (its root uses one): parallel 4 must narrow to 1 and still save all.
            let full = try await runJob(request(directory, running, level: .full), cloud, repository: repo)
            #expect(full.allSaved, "\(full.volumes)")
            #expect(full.volumes.count == 4)
            #expect(full.skipped.contains { $0.reason.contains("the proxy server itself") })
            try expectNoDebris(running)

            let webRoot = EmulatorSeed.volumeID("root/../x")
            let file = running.volumeFile(volumeID: webRoot)
            let handle = try #require(FileHandle(forWritingAtPath: file))
            try handle.seek(toOffset: 3 << 20)
            try handle.write(contentsOf: Data("changed after the Full".utf8))
            try handle.close()

            let incremental = try await runJob(request(directory, running, level: .incremental), cloud, repository: repo)
            #expect(incremental.allSaved)
            #expect(incremental.volumes.allSatisfy { $0.level == "incremental" })
            let changed = try #require(incremental.volumes.first { $0.volumeID == webRoot })
            #expect(changed.dataBytes == 65536)
            #expect(changed.bytesStored > 0 && changed.bytesStored <= 65536 + UInt64(BlockFrameWord.size))
            #expect(incremental.volumes.filter { $0.volumeID != webRoot }.allSatisfy { $0.dataBytes == 0 && $0.bytesStored == 0 })
            try expectNoDebris(running)

            let restored = try RestoreToDirectory.run(
                repository: BackupRepository(directory: repo, create: false), jobID: nil, servers: [], volumes: [],
                target: "\(directory)/out", logger: testLogger)
            #expect(restored.count == 4)
            let dbID = EmulatorSeed.serverID("db-1")
            let servers = "\(directory)/out/@openstack/nova/server"
            #expect(FileManager.default.fileExists(atPath: "\(servers)/\(dbID)/\(dbID).conf"))
            #expect(FileManager.default.fileExists(atPath: "\(servers)/\(dbID)_db-1.name"))
            for volume in restored {
                #expect(volume.path.hasSuffix("\(volume.volumeID).raw"))
                #expect(volume.path.hasPrefix("\(directory)/out/@openstack/"))
                #expect(!volume.path.dropFirst(directory.count).contains(".."))
                let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == original, "\(volume.path)")
            }
        }
    }

    @Test("awkward names are path-safe, the .name keeps the original, the .conf holds no secret")
    func namespace() async throws {
        try await withCloudJob { running, cloud, directory in
            let report = try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo")
            let job = try BackupRepository(directory: "\(directory)/repo", create: false).latestJob()
            #expect(job.jobID == report.jobID)
            let webID = EmulatorSeed.serverID("web/1 ..\u{202E}\nevil")
            let nameFile = try #require(job.files.first { $0.hasPrefix("@openstack/nova/server/\(webID)_") })
            #expect(!nameFile.contains("\u{202E}") && !nameFile.contains("\n") && !nameFile.contains(".."))
            #expect(nameFile.split(separator: "/").count == 4)
            let folder = "\(directory)/repo/\(job.jobID)"
            #expect(try String(contentsOfFile: "\(folder)/\(nameFile)", encoding: .utf8) == "web/1 ..\u{202E}\nevil")
            let conf = try String(contentsOfFile: "\(folder)/@openstack/nova/server/\(webID)/\(webID).conf", encoding: .utf8)
            #expect(!conf.contains("admin-secret") && !conf.lowercased().contains("token") && !conf.contains("adminPass"))
            let parsed = try ServerConfiguration.decode(Array(conf.utf8))
            #expect(parsed.volumes.count == 2)
            #expect(parsed.server?.name == "web/1 ..\u{202E}\nevil")
            let root = try #require(job.volumes.first { $0.volumeID == EmulatorSeed.volumeID("root/../x") })
            #expect(root.dataFile.hasSuffix("/root_.__x_\(root.volumeID).bvmdk"))
            #expect(job.files.contains("@openstack/nova/flavor/m1.small"))
            #expect(job.volumes.contains { $0.dataFile.hasPrefix("@openstack/cinder/volume/") })
        }
    }

    @Test("selection: by name, by regex, exclusion, one volume; an unknown server is a not-found error")
    func selection() async throws {
        try await withCloudJob { running, cloud, directory in
            let byName = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(servers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(byName.volumes.map(\.volumeID) == [EmulatorSeed.volumeID("db-1-root")])
            let excluded = try await runJob(
                request(
                    directory, running, level: .full,
                    selection: TargetSelection(servers: [try ServerSelector.parse("re:.*")], excludedServers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(!excluded.volumes.contains { $0.serverName == "db-1" })
            #expect(excluded.volumes.contains { $0.serverName == "backup-proxy" }, "a regex names the proxy too")
            let oneVolume = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(volumes: [EmulatorSeed.volumeID("loose")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(oneVolume.volumes.map(\.volumeID) == [EmulatorSeed.volumeID("loose")])
            let error = await #expect(throws: BackupError.self) {
                _ = try await runJob(
                    request(directory, running, level: .full, selection: TargetSelection(servers: [.name("nope")], allProjects: true)),
                    cloud, repository: "\(directory)/repo")
            }
            #expect(error?.kind == .notFound)
            #expect(error?.description.contains("nope") == true)
            try expectNoDebris(running)
        }
    }

    @Test("a job cancelled mid-scan removes its temporary resources and installs no map")
    func cancellation() async throws {
        try await withCloudJob { running, cloud, directory in
            let task = Task { try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo") }
            // Cancel once a temporary volume is attached to the proxy.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if try running.inventory().volumes.contains(where: { $0.metadata[CloudTags.job] != nil && $0.status == "in-use" }) { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            task.cancel()
            let error = await #expect(throws: BackupError.self) { _ = try await task.value }
            #expect(error?.kind == .cancelled)
            try expectNoDebris(running)
            let maps = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state").filter { $0.hasSuffix(".map") }
            #expect(maps.isEmpty)
            #expect(try BackupRepository(directory: "\(directory)/repo", create: false).jobs().isEmpty)
        }
    }

    @Test("a dead job's journal is replayed by the next job, and tagged leftovers no journal knows are found")
    func sweep() async throws {
        try await withCloudJob { running, cloud, directory in
            let state = "\(directory)/state"
            let proxyID = EmulatorSeed.serverID("backup-proxy")
            let source = EmulatorSeed.volumeID("db-1-root")
            // A job that "died" after creating a snapshot whose answer it never saw (no id in the journal).
            let deadJob = "\(BackupID.generate())"
            let journal = try ResourceJournal.create(stateDirectory: state, jobID: deadJob, proxyServerID: proxyID)
            let tag = UUID().uuidString.lowercased()
            _ = try journal.record(JournalEntry(kind: .snapshot, id: nil, requestTag: tag, name: "osbackup-dead", sourceVolumeID: source))
            _ = try await cloud.blockStorage.createSnapshot(
                volumeID: source, name: "osbackup-dead",
                metadata: [CloudTags.job: deadJob, CloudTags.proxy: proxyID, CloudTags.sourceVolume: source, CloudTags.request: tag])
            journal.close()  // the lock goes, the journal stays: as after a SIGKILL
            // And a leftover of a lost working dir: tagged, no journal.
            let lostJob = "\(BackupID.generate())"
            let lost = try await cloud.blockStorage.createVolume(
                VolumeCreateRequest(size: 1, name: "osbackup-lost", metadata: [CloudTags.job: lostJob, CloudTags.proxy: proxyID]))
            // An operator's volume with a similar name but no tags is never touched.
            let operators = try await cloud.blockStorage.createVolume(VolumeCreateRequest(size: 1, name: "osbackup-mine"))
            _ = try await cloud.blockStorage.waitForVolume(id: lost.id, statuses: ["available"])
            _ = try await cloud.blockStorage.waitForVolume(id: operators.id, statuses: ["available"])

            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(servers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(report.sweptResources == 1)
            #expect(try running.inventory().snapshots.isEmpty)

            let sweeper = ResourceSweeper(cloud: cloud, logger: testLogger)
            let leftovers = try await sweeper.taggedLeftovers(proxyServerID: proxyID) { ResourceJournal.isLive(stateDirectory: state, jobID: $0) }
            #expect(leftovers.keys.sorted() == [lostJob])
            for entry in leftovers[lostJob] ?? [] { try await sweeper.undo(entry, jobID: lostJob) }
            let volumes = try running.inventory().volumes.map(\.id)
            #expect(!volumes.contains(lost.id))
            #expect(volumes.contains(operators.id))
        }
    }
}
