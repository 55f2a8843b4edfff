import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import OpenStackClient
import Testing
import TestSupport

/// Two proxies in the admin project and a tenant server for each (MiB sizes).
let twoProxyCloudSeed = """
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
    servers:
      - name: backup-proxy
        project: admin
        flavor: m1.small
        proxy: true
        volumes:
          - {name: proxy-root, size: 4}
      - name: proxy-2
        project: admin
        flavor: m1.small
        proxy: true
        volumes:
          - {name: proxy-2-root, size: 4}
      - name: app-1
        project: tenant
        flavor: m1.small
        volumes:
          - name: app-1-root
            size: 12
            content: [{text: "app-1\\n", length: 64K}, {random: 1M, seed: 1}]
          - name: app-1-data
            size: 8
            content: [{random: 512K, seed: 2}]
      - name: app-2
        project: tenant
        flavor: m1.small
        volumes:
          - name: app-2-root
            size: 16
            content: [{text: "app-2\\n", length: 64K}, {random: 1M, seed: 3}]
    """

@Suite("Two proxies against one cloud")
struct TwoProxyTests {
    @Test("two jobs, one per proxy with its own state, run at once: each attaches only to its own proxy, both save everything, nothing is left")
    func concurrentJobs() async throws {
        try await withCloudJob(seed: twoProxyCloudSeed) { running, cloud, directory in
            let proxies = ["backup-proxy", "proxy-2"]
            let servers = ["backup-proxy": "app-1", "proxy-2": "app-2"]
            let volumes = ["app-1": ["app-1-root", "app-1-data"], "app-2": ["app-2-root"]]
            func backup(_ proxy: String) async throws -> CloudBackupReport {
                let request = CloudBackupRequest(
                    selection: TargetSelection(servers: [.name(servers[proxy]!)], allProjects: true), level: .full,
                    stateDirectory: "\(directory)/state-\(proxy)", proxyServerID: EmulatorSeed.serverID(proxy),
                    devices: DeviceLocator(deviceDirectory: try running.deviceDirectory(ofProxy: proxy), timeout: .seconds(10)),
                    parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1),
                    // Slow enough (about 3 s each) that the two jobs read at the same time.
                    readRateLimiter: ReadRateLimiter(bytesPerSecond: 4 << 20))
                return try await runJob(request, cloud, repository: "\(directory)/repo-\(proxy)")
            }
            // Watches the cloud while both jobs run: which proxy each temporary volume is attached to.
            let watching = Task {
                var wrongProxy: Set<String> = []
                var bothAtOnce = false
                while !Task.isCancelled {
                    let inventory = try running.inventory()
                    var attachedTo: Set<String> = []
                    for attachment in inventory.attachments {
                        guard let volume = inventory.volumes.first(where: { $0.id == attachment.volumeID }),
                            let proxy = volume.metadata[CloudTags.proxy]
                        else { continue }
                        if attachment.serverID != proxy { wrongProxy.insert("\(volume.name ?? volume.id) on \(attachment.serverName)") }
                        attachedTo.insert(attachment.serverID)
                    }
                    if attachedTo.count == 2 { bothAtOnce = true }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return (wrongProxy, bothAtOnce)
            }
            async let first = backup("backup-proxy")
            async let second = backup("proxy-2")
            let reports = try await [first, second]
            watching.cancel()
            let (wrongProxy, bothAtOnce) = try await watching.value
            #expect(wrongProxy.isEmpty, "temporary volumes attached to the other proxy: \(wrongProxy)")
            #expect(bothAtOnce, "the two jobs never had volumes attached at the same time")

            for (proxy, report) in zip(proxies, reports) {
                let expected = Set(volumes[servers[proxy]!]!.map(EmulatorSeed.volumeID))
                #expect(report.allSaved, "\(proxy): \(report.volumes)")
                #expect(Set(report.volumes.map(\.volumeID)) == expected, "\(proxy)")
                // Each proxy's state holds the maps of its own volumes only.
                let maps = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state-\(proxy)").filter { $0.hasSuffix(".map") }
                #expect(Set(maps.map { String($0.prefix(36)) }) == expected, "\(proxy): \(maps)")
                let restored = try RestoreToDirectory.run(
                    repository: BackupRepository(directory: "\(directory)/repo-\(proxy)", create: false), jobID: nil, servers: [], volumes: [],
                    target: "\(directory)/out-\(proxy)", logger: testLogger)
                #expect(Set(restored.map(\.volumeID)) == expected)
                for volume in restored {
                    let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                    #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == original, "\(volume.path)")
                }
            }
            try expectNoDebris(running)
            let onProxy2 = try running.inventory().attachments.filter {
                $0.serverName == "proxy-2" && $0.volumeID != EmulatorSeed.volumeID("proxy-2-root")
            }
            #expect(onProxy2.isEmpty, "left attached to proxy-2: \(onProxy2)")
        }
    }

    @Test("a job that selects every server never takes the other proxy's temporary volumes (attached to it) as targets")
    func otherProxysTemporaryVolumes() async throws {
        try await withCloudJob(seed: twoProxyCloudSeed) { running, cloud, directory in
            func request(_ proxy: String, _ selection: TargetSelection, rate: UInt64? = nil) throws -> CloudBackupRequest {
                CloudBackupRequest(
                    selection: selection, level: .full, stateDirectory: "\(directory)/state-\(proxy)", proxyServerID: EmulatorSeed.serverID(proxy),
                    devices: DeviceLocator(deviceDirectory: try running.deviceDirectory(ofProxy: proxy), timeout: .seconds(10)),
                    parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1),
                    readRateLimiter: rate.map { ReadRateLimiter(bytesPerSecond: $0) })
            }
            // proxy-2 reads app-2 slowly (about 7 s) ...
            let second = Task {
                try await runJob(
                    try request("proxy-2", TargetSelection(servers: [.name("app-2")], allProjects: true), rate: 2 << 20), cloud,
                    repository: "\(directory)/repo-2")
            }
            var temporary: String?
            for _ in 0..<1000 where temporary == nil {
                let inventory = try running.inventory()
                temporary = inventory.attachments.first { attachment in
                    attachment.serverName == "proxy-2"
                        && inventory.volumes.contains { $0.id == attachment.volumeID && $0.metadata[CloudTags.job] != nil && $0.status == "in-use" }
                }?.volumeID
                try await Task.sleep(for: .milliseconds(10))
            }
            let attached = try #require(temporary, "proxy-2's job never attached its temporary volume")
            // ... while proxy 1 backs up every server, proxy-2 among them (its own disk is an ordinary target).
            let first = try await runJob(try request("backup-proxy", TargetSelection(allProjects: true)), cloud, repository: "\(directory)/repo-1")
            #expect(first.allSaved, "\(first.volumes)")
            #expect(first.volumes.contains { $0.volumeID == EmulatorSeed.volumeID("proxy-2-root") })
            #expect(!first.volumes.contains { $0.volumeID == attached }, "proxy-2's temporary volume was backed up: \(first.volumes)")
            #expect(!first.volumes.contains { ($0.volumeName ?? "").hasPrefix("osbackup-") }, "\(first.volumes)")
            #expect(first.skipped.contains { $0.target.contains(attached) && $0.reason.contains("temporary volume of osbackup job") }, "\(first.skipped)")
            let report = try await second.value
            #expect(report.allSaved && report.leftovers.isEmpty, "\(report)")
            try expectNoDebris(running)
        }
    }
}
