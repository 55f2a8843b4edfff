import CloudEmulator
import Foundation
import OpenStackClient
import Testing
import TestSupport

/// Two proxies in one cloud (the scale-out layout): `backup-proxy` first, `proxy-2` second, a volume for each.
let twoProxiesSeedYAML = """
    projects:
      - name: admin
    users:
      - name: admin
        password: admin-secret
        roles: {admin: [admin]}
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
    volumes:
      - {name: for-proxy-1, project: admin, size: 2, content: [{text: "one\\n", length: 4K}]}
      - {name: for-proxy-2, project: admin, size: 2, content: [{text: "two\\n", length: 4K}]}
    """

@Suite("Several proxies")
struct ProxyTests {
    @Test("a volume attached to a proxy appears only in that proxy's device directory, also after a restart; clouds.yaml names each proxy")
    func twoProxies() async throws {
        try await withTemporaryDirectory { directory in
            let state = "\(directory)/cloud"
            let one = EmulatorSeed.volumeID("for-proxy-1")
            let two = EmulatorSeed.volumeID("for-proxy-2")
            let (first, second) = try await withTestCloud(seed: twoProxiesSeedYAML, stateDirectory: state) { cloud in
                let first = try cloud.running.deviceDirectory(ofProxy: "backup-proxy")
                let second = try cloud.running.deviceDirectory(ofProxy: "proxy-2")
                #expect(first == cloud.running.deviceDirectory, "the first proxy keeps the single-proxy layout")
                #expect(second == cloud.running.deviceDirectory + "/proxy-2")
                let admin = try await cloud.token()
                for (volume, proxy) in [(one, "backup-proxy"), (two, "proxy-2")] {
                    let attached = try await cloud.send(
                        "POST", "/compute/v2.1/servers/\(EmulatorSeed.serverID(proxy))/os-volume_attachments", token: admin,
                        json: #"{"volumeAttachment":{"volumeId":"\#(volume)"}}"#)
                    #expect(attached.status == 200, "attach \(volume) to \(proxy): \(attached.status)")
                }
                for volume in [one, two] { try await cloud.waitForVolume(volume, status: "in-use", token: admin, project: cloud.adminProjectID) }
                try expectDevices(one: one, two: two, first: first, second: second)

                // Written through proxy-2's device, the volume changes.
                let handle = try #require(FileHandle(forWritingAtPath: link(two, in: second)))
                try handle.write(contentsOf: Data("through proxy-2".utf8))
                try handle.close()
                let file = try #require(FileManager.default.contents(atPath: cloud.running.volumeFile(volumeID: two)))
                #expect(file.prefix(15) == Data("through proxy-2".utf8))

                let inventory = try cloud.running.inventory()
                #expect(inventory.attachments.first { $0.volumeID == two }?.devicePath == link(two, in: second))
                #expect(inventory.attachments.first { $0.volumeID == one }?.devicePath == link(one, in: first))
                #expect(inventory.servers.filter(\.isProxy).map(\.name).sorted() == ["backup-proxy", "proxy-2"])
                #expect(inventory.text.contains("proxy-2 (proxy, devices in \(second))"), "\(inventory.text)")

                // Each cloud entry carries its proxy's identity and device directory, read as osbackup reads them.
                try cloud.running.cloudsYAML().write(toFile: "\(directory)/clouds.yaml", atomically: true, encoding: .utf8)
                let loader = CloudConfigurationLoader(environment: [:], searchDirectories: [directory])
                let emulator = try loader.load(overrides: CloudConfigurationOverrides(cloud: "emulator"))
                #expect(emulator.proxyServerID == EmulatorSeed.serverID("backup-proxy") && emulator.deviceDirectory == first)
                let proxy2 = try loader.load(overrides: CloudConfigurationOverrides(cloud: "emulator-proxy-2"))
                #expect(proxy2.proxyServerID == EmulatorSeed.serverID("proxy-2") && proxy2.deviceDirectory == second)
                #expect(proxy2.identityURL == emulator.identityURL)
                return (first, second)
            }
            // Stopped: every device is withdrawn ...
            for path in [link(one, in: first), link(two, in: second)] { #expect(!FileManager.default.fileExists(atPath: path), "\(path)") }
            // ... and a restart brings each back to its own proxy; a detach removes it from there.
            try await withTestCloud(seed: twoProxiesSeedYAML, stateDirectory: state) { cloud in
                try expectDevices(one: one, two: two, first: first, second: second)
                let admin = try await cloud.token()
                let detached = try await cloud.send(
                    "DELETE", "/compute/v2.1/servers/\(EmulatorSeed.serverID("proxy-2"))/os-volume_attachments/\(two)", token: admin)
                #expect(detached.status == 202)
                #expect(!FileManager.default.fileExists(atPath: link(two, in: second)))
                #expect(FileManager.default.fileExists(atPath: link(one, in: first)))
            }
        }
    }

    @Test(
        "a second proxy's name must be a plain folder name, and proxies' names must differ",
        arguments: ["disk", "a/b", ".hidden", "", "backup-proxy"])
    func proxyNames(name: String) async throws {
        let seed = twoProxiesSeedYAML.replacingOccurrences(of: "- name: proxy-2\n", with: "- name: \"\(name)\"\n")
        let error = await #expect(throws: EmulatorError.self) { try await withTestCloud(seed: seed) { _ in } }
        let reason = name == "backup-proxy" ? "both named 'backup-proxy'" : "server '\(name)': a second or further proxy sees its devices in"
        #expect(error?.description.contains(reason) == true, "\(error.map(String.init(describing:)) ?? "")")
    }

    /// The device link of `volume` in a proxy's device directory.
    private func link(_ volume: String, in directory: String) -> String { "\(directory)/disk/by-id/virtio-\(volume.prefix(20))" }

    /// `one` is seen by the first proxy only, `two` by the second only.
    private func expectDevices(
        one: String, two: String, first: String, second: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let exists = { (path: String) in FileManager.default.fileExists(atPath: path) }
        #expect(exists(link(one, in: first)), "volume 1 on proxy 1", sourceLocation: sourceLocation)
        #expect(!exists(link(one, in: second)), "volume 1 not on proxy 2", sourceLocation: sourceLocation)
        #expect(exists(link(two, in: second)), "volume 2 on proxy 2", sourceLocation: sourceLocation)
        #expect(!exists(link(two, in: first)), "volume 2 not on proxy 1", sourceLocation: sourceLocation)
    }
}
