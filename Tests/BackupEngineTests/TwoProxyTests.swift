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

/// Holds a job mid-read: the first time the engine reports a scanned chunk (its progress hook, called on
/// the scan's own thread, where the read-rate limiter also waits) that scan waits until ``release()``.
/// The job is then live, its temporary volume attached, whatever the machine's load.
final class ReadHold: Sendable {
    private let arrived = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private let state = LockedValue((held: false, released: false))

    /// The progress hook of the job to hold.
    var progress: @Sendable (VolumeProgress) -> Void {
        { [self] _ in
            let hold = state.withLock { state in
                guard !state.held && !state.released else { return false }
                state.held = true
                return true
            }
            guard hold else { return }
            arrived.signal()
            gate.wait()
        }
    }

    /// Waits (on a thread of its own, up to 60 s) until a scan of the job is held.
    func waitUntilHeld(_ what: String) async throws {
        let arrived = self.arrived
        let held = try await onOwnThread { arrived.wait(timeout: .now() + 60) == .success }
        try #require(held, "\(what) never started reading")
    }

    /// Lets the held scan (and every later one) go on; idempotent.
    func release() {
        let first = state.withLock { state in
            defer { state.released = true }
            return !state.released
        }
        if first { gate.signal() }
    }
}

@Suite("Two proxies against one cloud")
struct TwoProxyTests {
    /// A Full of `selection` by the job of `proxy`, with its own state and repository, held mid-read by `hold`
    /// if given.
    private static func backup(
        _ proxy: String, selection: TargetSelection, hold: ReadHold? = nil, running: RunningEmulator, cloud: CloudServices, directory: String
    ) async throws -> CloudBackupReport {
        let request = CloudBackupRequest(
            selection: selection, level: .full, stateDirectory: "\(directory)/state-\(proxy)", proxyServerID: EmulatorSeed.serverID(proxy),
            devices: DeviceLocator(deviceDirectory: try running.deviceDirectory(ofProxy: proxy), timeout: .seconds(10)),
            parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1), progress: hold?.progress)
        return try await runJob(request, cloud, repository: "\(directory)/repo-\(proxy)")
    }

    @Test("two jobs, one per proxy with its own state, run at once: each attaches only to its own proxy, both save everything, nothing is left")
    func concurrentJobs() async throws {
        try await withCloudJob(seed: twoProxyCloudSeed) { running, cloud, directory in
            let proxies = ["backup-proxy", "proxy-2"]
            let servers = ["backup-proxy": "app-1", "proxy-2": "app-2"]
            let volumes = ["app-1": ["app-1-root", "app-1-data"], "app-2": ["app-2-root"]]
            let holds = [ReadHold(), ReadHold()]
            let jobs = proxies.enumerated().map { index, proxy in
                Task {
                    try await Self.backup(
                        proxy, selection: TargetSelection(servers: [.name(servers[proxy]!)], allProjects: true), hold: holds[index],
                        running: running, cloud: cloud, directory: directory)
                }
            }
            do {
                // Both jobs reading at once: each temporary volume is attached to its own proxy and seen in
                // that proxy's device directory only.
                for (hold, proxy) in zip(holds, proxies) { try await hold.waitUntilHeld("the job of \(proxy)") }
                let inventory = try running.inventory()
                for proxy in proxies {
                    let other = try running.deviceDirectory(ofProxy: proxies.first { $0 != proxy }!)
                    let temporary = inventory.volumes.filter { $0.metadata[CloudTags.proxy] == EmulatorSeed.serverID(proxy) }
                    let attached = inventory.attachments.filter { attachment in temporary.contains { $0.id == attachment.volumeID } }
                    #expect(attached.allSatisfy { $0.serverName == proxy }, "\(attached)")
                    // The held volume's device is there (another volume of the job may be attaching or detaching).
                    let devices = attached.filter { $0.devicePath != nil }
                    #expect(!devices.isEmpty, "no temporary volume of \(proxy) with its device: \(inventory.attachments)")
                    for attachment in devices {
                        let device = attachment.devicePath ?? ""
                        #expect(device.hasPrefix(try running.deviceDirectory(ofProxy: proxy) + "/disk/by-id/"), "\(device)")
                        let elsewhere = "\(other)/disk/by-id/virtio-\(attachment.volumeID.prefix(20))"
                        #expect(!FileManager.default.fileExists(atPath: elsewhere), "\(elsewhere)")
                    }
                }
            } catch {
                holds.forEach { $0.release() }
                for job in jobs { _ = try? await job.value }
                throw error
            }
            holds.forEach { $0.release() }
            var reports: [CloudBackupReport] = []
            for job in jobs { reports.append(try await job.value) }

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
            // proxy-2's job, held mid-read with its temporary volume attached to proxy-2 ...
            let hold = ReadHold()
            let second = Task {
                try await Self.backup(
                    "proxy-2", selection: TargetSelection(servers: [.name("app-2")], allProjects: true), hold: hold, running: running,
                    cloud: cloud, directory: directory)
            }
            let first: CloudBackupReport
            let attached: String
            do {
                try await hold.waitUntilHeld("the job of proxy-2")
                let inventory = try running.inventory()
                attached = try #require(
                    inventory.attachments.first { attachment in
                        attachment.serverName == "proxy-2" && inventory.volumes.contains { $0.id == attachment.volumeID && $0.metadata[CloudTags.job] != nil }
                    }?.volumeID, "proxy-2's job has no temporary volume attached")
                // ... while proxy 1 backs up every server, proxy-2 among them (its own disk is an ordinary target).
                first = try await Self.backup(
                    "backup-proxy", selection: TargetSelection(allProjects: true), running: running, cloud: cloud, directory: directory)
            } catch {
                hold.release()
                _ = try? await second.value
                throw error
            }
            hold.release()
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
