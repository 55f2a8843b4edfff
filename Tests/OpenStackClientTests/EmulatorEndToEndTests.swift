import CloudEmulator
import Foundation
import Logging
import Testing
import TestSupport
@testable import OpenStackClient

/// Every typed Nova and Cinder call, end to end over real HTTP against the in-repo emulator (whose shapes
/// openstacksdk and the recorded real responses check), in the order a backup uses them.
@Suite("Typed calls against the emulator")
struct EmulatorEndToEndTests {
    static let seed = """
        projects:
          - name: admin
          - name: tenant
        users:
          - name: admin
            password: admin-secret
            roles: {admin: [admin], tenant: [admin]}
            default_project: admin
        flavors:
          - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
        networks:
          - {name: private}
        servers:
          - name: backup-proxy
            project: admin
            flavor: m1.small
            proxy: true
            networks: [private]
            volumes:
              - {name: proxy-root, size: 4}
          - name: web-1
            project: admin
            flavor: m1.small
            networks: [private]
            volumes:
              - {name: web-1-root, size: 4, content: [{text: "hello\\n", length: 64K}]}
          - name: web-2
            project: admin
            flavor: m1.small
            volumes:
              - {name: web-2-root, size: 2}
        """

    @Test("snapshot, temporary volume, attach to the proxy, detach, delete: nothing left behind")
    func backupSequence() async throws {
        try await withTemporaryDirectoryAsync { directory in
            let configuration = EmulatorConfiguration(
                stateDirectory: "\(directory)/state", transitionDelay: 0.05, sizeUnit: .mebibyte)
            try await withRunningEmulator(configuration: configuration, seed: try EmulatorSeed.parse(yaml: Self.seed)) { cloud in
                let cloudConfiguration = CloudConfiguration(
                    authURL: cloud.authURL,
                    credentials: .password(
                        user: UserReference(name: "admin", domainName: "Default"), password: Secret("admin-secret"),
                        project: ProjectReference(name: "admin", domainName: "Default")))
                try await OpenStackTransport.withTransport(proxies: ProxySettings()) { transport in
                    let session = KeystoneSession(configuration: cloudConfiguration, transport: transport, logger: Logger(label: "t"))
                    let nova = try await ComputeClient.connect(session: session)
                    let cinder = try await BlockStorageClient.connect(
                        session: session, waitPolicy: StatusWaitPolicy(timeout: .seconds(30), initialInterval: .milliseconds(50)))
                    #expect(nova.microversion == ComputeClient.maximumMicroversion)
                    #expect(cinder.microversion == BlockStorageClient.maximumMicroversion)

                    // Servers, one per page; the exact-name filter; the proxy.
                    let servers = try await nova.servers(ServerFilter(pageSize: 1))
                    #expect(Set(servers.map(\.name)) == ["backup-proxy", "web-1", "web-2"])
                    let web = try #require(try await nova.servers(.exactName("web-1")).first)
                    #expect(web.flavor?.originalName == "m1.small")
                    let proxy = try #require(servers.first { $0.name == "backup-proxy" })
                    let sourceVolumeID = try #require(web.attachedVolumes.first?.id)
                    let source = try await cinder.volume(id: sourceVolumeID)
                    #expect(source.status == "in-use")
                    #expect(try await cinder.volumes(VolumeFilter(pageSize: 1)).count == 3)

                    // Snapshot of the in-use volume, then a temporary volume from it.
                    let snapshot = try await cinder.createSnapshot(
                        volumeID: sourceVolumeID, name: "osbackup-snap", metadata: ["osbackup_job": "t1"])
                    _ = try await cinder.waitForSnapshot(id: snapshot.id, statuses: ["available"])
                    let temporary = try await cinder.createVolume(
                        VolumeCreateRequest(name: "osbackup-tmp", snapshotID: snapshot.id, metadata: ["osbackup_job": "t1"]))
                    _ = try await cinder.waitForVolume(id: temporary.id, statuses: ["available"])
                    try await cinder.setVolumeMetadata(id: temporary.id, ["osbackup_stage": "attached"])
                    #expect(try await cinder.volumes(VolumeFilter(metadata: ["osbackup_job": "t1"])).map(\.id) == [temporary.id])

                    // Attach to the proxy; the device appears by serial; its bytes are the snapshot's.
                    _ = try await nova.attachVolume(serverID: proxy.id, volumeID: temporary.id)
                    let attached = try await cinder.waitForVolume(id: temporary.id, statuses: ["in-use"])
                    #expect(attached.attachments.first?.serverID == proxy.id)
                    #expect(try await nova.volumeAttachments(serverID: proxy.id).contains { $0.volumeID == temporary.id })
                    let device = cloud.devicePath(volumeID: temporary.id)
                    let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: device)).read(upToCount: 6)
                    #expect(head == Data("hello\n".utf8))

                    // Detach and delete everything.
                    try await nova.detachVolume(serverID: proxy.id, volumeID: temporary.id)
                    _ = try await cinder.waitForVolume(id: temporary.id, statuses: ["available"])
                    #expect(!FileManager.default.fileExists(atPath: device))
                    try await cinder.deleteVolume(id: temporary.id)
                    try await cinder.waitForVolumeDeleted(id: temporary.id)
                    try await cinder.deleteSnapshot(id: snapshot.id)
                    try await cinder.waitForSnapshotDeleted(id: snapshot.id)
                    let inventory = try cloud.inventory()
                    #expect(inventory.snapshots.isEmpty)
                    #expect(!inventory.volumes.contains { $0.metadata["osbackup_job"] != nil })

                    // A restore: a new volume, a new server booted from it; a missing resource is a clear 404.
                    let flavor = try await nova.flavor(id: EmulatorSeed.flavorID("m1.small"))
                    #expect(flavor.name == "m1.small" && flavor.ram == 2048)
                    let root = try await cinder.createVolume(VolumeCreateRequest(size: 4, name: "restored-root"))
                    _ = try await cinder.waitForVolume(id: root.id, statuses: ["available"])
                    let serverID = try await nova.createServer(
                        ServerCreateRequest(
                            name: "web-1-restored", flavorID: flavor.id, blockDevices: [.init(volumeID: root.id, bootIndex: 0)],
                            networks: [.network(id: EmulatorSeed.networkID("private"))]))
                    let restored = try await nova.server(id: serverID)
                    #expect(restored.name == "web-1-restored")
                    #expect(restored.imageID == nil, "booted from a volume")
                    let missing = await #expect(throws: OpenStackError.self) { try await cinder.volume(id: "00000000-0000-0000-0000-000000000000") }
                    #expect(missing?.status == 404)
                    #expect(missing?.description.contains("could not be found") == true)
                }
            }
        }
    }
}

/// `withTemporaryDirectory` for async bodies.
func withTemporaryDirectoryAsync<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("osbackup-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
