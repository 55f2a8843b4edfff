import Foundation
import Testing
@testable import OpenStackClient

@Suite("Nova and Cinder models")
struct ServiceModelTests {
    static let cinderBodies = RecordedExchange.all(in: "real-cinder-api").filter { $0.status < 300 && !$0.body.isEmpty }

    @Test("every recorded Cinder volume and snapshot decodes", arguments: cinderBodies)
    func recordedCinderBodies(exchange: RecordedExchange) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(exchange.body)) as? [String: Any])
        let decoder = JSONDecoder()
        let data = Data(exchange.body)
        if object["volume"] != nil {
            let volume = try decoder.decode([String: Volume].self, from: data)["volume"]!
            #expect(!volume.id.isEmpty && volume.size >= 1 && !volume.status.isEmpty)
        } else if object["volumes"] != nil {
            _ = try decoder.decode([String: [Volume]].self, from: data.filteringKeys(["volumes"]))
        } else if object["snapshot"] != nil {
            let snapshot = try decoder.decode([String: Snapshot].self, from: data)["snapshot"]!
            #expect(!snapshot.volumeID.isEmpty)
        } else if object["snapshots"] != nil {
            _ = try decoder.decode([String: [Snapshot]].self, from: data.filteringKeys(["snapshots"]))
        }
    }

    @Test("an in-use volume lists its attachment to the server")
    func attachmentsDecode() throws {
        let json = #"{"id":"v1","status":"in-use","size":1,"bootable":"false","attachments":[{"server_id":"s1","attachment_id":"a1","attached_at":"2026-11-22T01:00:00.000000","host_name":null,"volume_id":"v1","device":"/dev/vdb","id":"v1"}],"metadata":{}}"#
        let volume = try JSONDecoder().decode(Volume.self, from: Data(json.utf8))
        #expect(volume.attachments.first?.serverID == "s1")
        #expect(volume.attachments.first?.attachmentID == "a1")
        #expect(!volume.isBootable)
    }

    @Test("a boot-from-volume server at 2.47+: image is \"\", flavor is embedded")
    func serverShapes() throws {
        let json = #"""
            {"id":"s1","name":"web","status":"ACTIVE","tenant_id":"p","user_id":"u","OS-EXT-STS:task_state":null,
             "OS-EXT-STS:vm_state":"active","OS-EXT-AZ:availability_zone":"nova","image":"",
             "flavor":{"vcpus":2,"ram":2048,"disk":0,"ephemeral":0,"swap":0,"original_name":"m1.small","extra_specs":{"hw:cpu_policy":"shared"}},
             "os-extended-volumes:volumes_attached":[{"id":"v1","delete_on_termination":false}],
             "addresses":{"private":[{"addr":"10.0.0.5","version":4,"OS-EXT-IPS:type":"fixed","OS-EXT-IPS-MAC:mac_addr":"fa:16:3e:00:00:01"}]},
             "metadata":{"role":"web"},"key_name":"ops","security_groups":[{"name":"default"}],"tags":["prod"],"locked":false}
            """#
        let server = try JSONDecoder().decode(Server.self, from: Data(json.utf8))
        #expect(server.imageID == nil)
        #expect(server.flavor?.originalName == "m1.small")
        #expect(server.flavor?.extraSpecs?["hw:cpu_policy"] == "shared")
        #expect(server.attachedVolumes.map(\.id) == ["v1"])
        #expect(server.securityGroups == ["default"])
        #expect(server.addresses?["private"] != nil)
        #expect(server.taskState == nil)
        let old = #"{"id":"s2","name":"db","status":"SHUTOFF","image":{"id":"img","links":[]},"flavor":{"id":"42","links":[]},"OS-EXT-STS:task_state":"image_snapshot"}"#
        let legacy = try JSONDecoder().decode(Server.self, from: Data(old.utf8))
        #expect(legacy.imageID == "img")
        #expect(legacy.flavor?.id == "42")
        #expect(legacy.taskState == "image_snapshot")
        #expect(legacy.attachedVolumes.isEmpty)
    }

    @Test("flavors before 2.75 send swap as \"\"")
    func flavorSwap() throws {
        let json = #"{"id":"1","name":"m1.tiny","ram":512,"disk":1,"vcpus":1,"swap":"","OS-FLV-EXT-DATA:ephemeral":0}"#
        #expect(try JSONDecoder().decode(Flavor.self, from: Data(json.utf8)).swap == 0)
    }

    @Test("attachments before and after 2.89")
    func attachmentShapes() throws {
        let before = #"{"device":"/dev/vdb","id":"v1","serverId":"s1","volumeId":"v1"}"#
        let after = #"{"device":"/dev/vdb","serverId":"s1","volumeId":"v1","attachment_id":"a1","bdm_uuid":"b1","tag":null,"delete_on_termination":false}"#
        #expect(try JSONDecoder().decode(VolumeAttachment.self, from: Data(before.utf8)).volumeID == "v1")
        #expect(try JSONDecoder().decode(VolumeAttachment.self, from: Data(after.utf8)).attachmentID == "a1")
    }

    @Test("version documents and negotiation")
    func versions() throws {
        let nova = #"{"version":{"id":"v2.1","status":"CURRENT","version":"2.93","min_version":"2.1","updated":"2013-07-23T11:33:21Z","links":[]}}"#
        let cinder = #"{"versions":[{"id":"v3.0","status":"CURRENT","version":"3.70","min_version":"3.0","updated":"2023-08-31T00:00:00Z","links":[]}]}"#
        let novaRange = try #require(try JSONDecoder().decode(VersionDocument.self, from: Data(nova.utf8)).range(idPrefix: "v2.1"))
        #expect(novaRange.negotiate(clientMinimum: Microversion(2, 1), clientMaximum: Microversion(2, 100)) == Microversion(2, 93))
        let cinderRange = try #require(try JSONDecoder().decode(VersionDocument.self, from: Data(cinder.utf8)).range(idPrefix: "v3"))
        #expect(cinderRange.negotiate(clientMinimum: Microversion(3, 0), clientMaximum: Microversion(3, 60)) == Microversion(3, 60))
        #expect(cinderRange.negotiate(clientMinimum: Microversion(3, 71), clientMaximum: Microversion(3, 80)) == nil)
        #expect(Microversion("2.9")! < Microversion("2.10")!)
    }

    @Test("version URLs from catalog endpoints")
    func versionURLs() {
        #expect(BlockStorageClient.versionURL(endpoint: "https://c:8776/v3/abc") == "https://c:8776/v3/")
        #expect(ComputeClient.versionURL(endpoint: "https://n:8774/v2.1/abc") == "https://n:8774/v2.1")
        #expect(ComputeClient.versionURL(endpoint: "https://n:8774/v2.1") == "https://n:8774/v2.1")
    }

    @Test("pagination follows the next link and query strings are encoded")
    func pagination() {
        let body = Array(#"{"volumes":[],"volumes_links":[{"rel":"next","href":"http://c/v3/p/volumes/detail?limit=1&marker=x"}]}"#.utf8)
        #expect(ServiceClient.nextLink(in: body, key: "volumes_links") == "http://c/v3/p/volumes/detail?limit=1&marker=x")
        #expect(ServiceClient.nextLink(in: Array(#"{"volumes":[]}"#.utf8), key: "volumes_links") == nil)
        #expect(ServiceClient.query([("name", "^a b$"), ("status", nil)]) == "?name=%5Ea%20b$")
        #expect(ServerFilter.exactName("web.1 (a)").nameRegex == #"^web\.1 \(a\)$"#)
    }

    @Test("server create bodies boot from volumes")
    func serverCreateBody() throws {
        let request = ServerCreateRequest(
            name: "restored", flavorID: "42",
            blockDevices: [.init(volumeID: "root", bootIndex: 0), .init(volumeID: "data", bootIndex: nil)],
            networks: [.network(id: "net", fixedIP: "10.0.0.9"), .port(id: "p1")], securityGroups: ["default"], keyName: "ops",
            availabilityZone: "nova")
        let data = try JSONSerialization.data(withJSONObject: request.body, options: .sortedKeys)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""boot_index":0"#) && text.contains(#""boot_index":-1"#))
        #expect(text.contains(#""imageRef":"""#))
        #expect(text.contains(#"{"fixed_ip":"10.0.0.9","uuid":"net"}"#))
        #expect(text.contains(#""key_name":"ops""#))
    }
}

extension Data {
    /// The JSON object with only `keys` kept (drops `*_links` and `count` next to a list).
    func filteringKeys(_ keys: Set<String>) -> Data {
        guard let object = try? JSONSerialization.jsonObject(with: self) as? [String: Any] else { return self }
        return (try? JSONSerialization.data(withJSONObject: object.filter { keys.contains($0.key) })) ?? self
    }
}
