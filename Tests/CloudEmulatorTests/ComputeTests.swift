import CloudEmulator
import Foundation
import Testing

@Suite("Nova v2.1 subset")
struct ComputeTests {
    @Test("version document, servers detail with name regex, all_tenants for admins only, pagination")
    func servers() async throws {
        try await withTestCloud { cloud in
            let version = try await cloud.send("GET", "/compute/v2.1")
            #expect(version.json?["version"]?["min_version"]?.string == "2.1")
            let tenant = try await cloud.tenantToken()
            let admin = try await cloud.token()
            let mine = try await cloud.send("GET", "/compute/v2.1/servers/detail", token: tenant)
            #expect(mine.header("OpenStack-API-Version") == "compute 2.1")
            #expect(Set(mine.json?["servers"]?.array?.compactMap { $0["name"]?.string } ?? []) == ["web-1", "db-1"])
            let regex = try await cloud.send("GET", "/compute/v2.1/servers/detail?name=%5Eweb", token: tenant)
            #expect(regex.json?["servers"]?.array?.count == 1)
            #expect(try await cloud.send("GET", "/compute/v2.1/servers/detail?all_tenants=1", token: tenant).status == 403)
            let all = try await cloud.send("GET", "/compute/v2.1/servers/detail?all_tenants=1&limit=2", token: admin)
            #expect(all.json?["servers"]?.array?.count == 2)
            let next = try #require(all.json?["servers_links"]?.array?.first?["href"]?.string)
            let rest = try await cloud.send("GET", next, token: admin)
            #expect(rest.json?["servers"]?.array?.count == 1)
            #expect(try await cloud.send("GET", "/compute/v2.1/servers/detail?marker=nope", token: admin).status == 400)
            let server = try await cloud.send(
                "GET", "/compute/v2.1/servers/\(EmulatorSeed.serverID("web-1"))", token: tenant,
                headers: [("OpenStack-API-Version", "compute 2.79")])
            let body = try #require(server.json?["server"])
            #expect(body["flavor"]?["original_name"]?.string == "m1.small")
            #expect(body["image"]?.string == "")
            #expect(body["os-extended-volumes:volumes_attached"]?.array?.count == 1)
            #expect(body["key_name"]?.string == "mykey")
            let flavor = try await cloud.send("GET", "/compute/v2.1/flavors/\(Identifiers.flavorID("m1.small"))", token: tenant)
            #expect(flavor.json?["flavor"]?["vcpus"] == .int(1))
        }
    }

    @Test("attach to the proxy: reserved → attaching → in-use, device link appears, writes reach the volume; detach removes it")
    func attachDetach() async throws {
        // Transitions slow enough that the transitional status is still there when the test looks,
        // even on a loaded 2-core machine (at 0.05 s it was sometimes already in-use).
        try await withTestCloud(transitionDelay: 1.0) { cloud in
            let admin = try await cloud.token()
            let volumeID = EmulatorSeed.volumeID("db-1-root")
            // A tenant volume is in use by db-1; make a fresh one to attach.
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes", project: cloud.adminProjectID), token: admin, json: #"{"volume":{"size":1,"name":"tmp"}}"#)
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(id, status: "available", token: admin, project: cloud.adminProjectID)
            let path = "/compute/v2.1/servers/\(cloud.proxyID)/os-volume_attachments"
            let attached = try await cloud.send(
                "POST", path, token: admin, headers: [("OpenStack-API-Version", "compute 2.79")],
                json: #"{"volumeAttachment":{"volumeId":"\#(id)"}}"#)
            #expect(attached.status == 200)
            #expect(attached.json?["volumeAttachment"]?["device"]?.string == "/dev/vdb")
            let reserved = try await cloud.send("GET", cloud.volumePath("/volumes/\(id)", project: cloud.adminProjectID), token: admin)
            #expect(["reserved", "attaching"].contains(reserved.json?["volume"]?["status"]?.string ?? ""))
            try await cloud.waitForVolume(id, status: "in-use", token: admin, project: cloud.adminProjectID)
            let device = cloud.running.devicePath(volumeID: id)
            #expect(device.hasSuffix("/disk/by-id/virtio-" + id.prefix(20)))
            let handle = try #require(FileHandle(forWritingAtPath: device))
            try handle.write(contentsOf: Data("through the device".utf8))
            try handle.close()
            let file = try #require(FileManager.default.contents(atPath: cloud.running.volumeFile(volumeID: id)))
            #expect(file.prefix(18) == Data("through the device".utf8))
            let list = try await cloud.send("GET", path, token: admin, headers: [("OpenStack-API-Version", "compute 2.89")])
            let entry = try #require(list.json?["volumeAttachments"]?.array?.first { $0["volumeId"]?.string == id })
            #expect(entry["attachment_id"]?.string != nil)
            #expect(entry["id"] == nil)
            // In use elsewhere: 400.
            let busy = try await cloud.send("POST", path, token: admin, json: #"{"volumeAttachment":{"volumeId":"\#(volumeID)"}}"#)
            #expect(busy.status == 400)
            #expect(try await cloud.send("DELETE", "\(path)/\(id)", token: admin).status == 202)
            #expect(!FileManager.default.fileExists(atPath: device))
            try await cloud.waitForVolume(id, status: "available", token: admin, project: cloud.adminProjectID)
            let modern = try await cloud.send(
                "POST", path, token: admin, headers: [("OpenStack-API-Version", "compute 2.101")],
                json: #"{"volumeAttachment":{"volumeId":"\#(id)"}}"#)
            #expect(modern.status == 202)
            #expect(modern.body.isEmpty)
            #expect(try await cloud.send("DELETE", "\(path)/\(EmulatorSeed.volumeID("proxy-root"))", token: admin).status == 400)
            let inventory = try cloud.running.inventory()
            #expect(inventory.attachments.contains { $0.volumeID == id })
        }
    }

    @Test("409 while the server has a task state; 403 past the attach-slot limit")
    func attachRefusals() async throws {
        try await withTestCloud { cloud in
            let admin = try await cloud.token()
            var ids: [String] = []
            for index in 0..<3 {
                let created = try await cloud.send(
                    "POST", cloud.volumePath("/volumes", project: cloud.adminProjectID), token: admin, json: #"{"volume":{"size":1,"name":"slot\#(index)"}}"#)
                ids.append(try #require(created.json?["volume"]?["id"]?.string))
            }
            for id in ids { try await cloud.waitForVolume(id, status: "available", token: admin, project: cloud.adminProjectID) }
            let db = EmulatorSeed.serverID("db-1")
            let busy = try await cloud.send(
                "POST", "/compute/v2.1/servers/\(db)/os-volume_attachments", token: admin,
                json: #"{"volumeAttachment":{"volumeId":"\#(ids[0])"}}"#)
            #expect(busy.status == 409)
            #expect(busy.json?["conflictingRequest"]?["message"]?.string == "Cannot 'attach_volume' instance \(db) while it is in task_state image_snapshot")
            let path = "/compute/v2.1/servers/\(cloud.proxyID)/os-volume_attachments"
            #expect(try await cloud.send("POST", path, token: admin, json: #"{"volumeAttachment":{"volumeId":"\#(ids[0])"}}"#).status == 200)
            #expect(try await cloud.send("POST", path, token: admin, json: #"{"volumeAttachment":{"volumeId":"\#(ids[1])"}}"#).status == 200)
            let over = try await cloud.send("POST", path, token: admin, json: #"{"volumeAttachment":{"volumeId":"\#(ids[2])"}}"#)
            #expect(over.status == 403)
            #expect(over.json?["forbidden"]?["message"]?.string?.contains("(3)") == true)
        }
    }

    @Test("server create from volumes: BUILD → ACTIVE, volumes in-use; bad key name 400; delete frees the volumes")
    func createServer() async throws {
        try await withTestCloud { cloud in
            let tenant = try await cloud.tenantToken()
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes"), token: tenant, json: #"{"volume":{"size":1,"name":"boot"}}"#)
            let volumeID = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(volumeID, status: "available", token: tenant)
            let network = Identifiers.networkID("private")
            func body(key: String) -> String {
                #"{"server":{"name":"restored","flavorRef":"\#(Identifiers.flavorID("m1.small"))","imageRef":"","key_name":"\#(key)","availability_zone":"nova","networks":[{"uuid":"\#(network)"}],"security_groups":[{"name":"default"}],"block_device_mapping_v2":[{"boot_index":0,"uuid":"\#(volumeID)","source_type":"volume","destination_type":"volume","delete_on_termination":false}]}}"#
            }
            let v = [("OpenStack-API-Version", "compute 2.79")]
            #expect(try await cloud.send("POST", "/compute/v2.1/servers", token: tenant, headers: v, json: body(key: "nokey")).status == 400)
            let response = try await cloud.send("POST", "/compute/v2.1/servers", token: tenant, headers: v, json: body(key: "mykey"))
            #expect(response.status == 202)
            #expect(response.header("Location") != nil)
            let id = try #require(response.json?["server"]?["id"]?.string)
            _ = try await cloud.waitFor("/compute/v2.1/servers/\(id)", token: tenant) { $0.json?["server"]?["status"]?.string == "ACTIVE" }
            try await cloud.waitForVolume(volumeID, status: "in-use", token: tenant)
            #expect(try await cloud.send("DELETE", "/compute/v2.1/servers/\(id)", token: tenant).status == 204)
            try await cloud.waitForVolume(volumeID, status: "available", token: tenant)
        }
    }
}

/// The ids the seed loader derives, for tests that need a flavor or network id.
enum Identifiers {
    static func flavorID(_ name: String) -> String { EmulatorSeed.flavorID(name) }
    static func networkID(_ name: String) -> String { EmulatorSeed.networkID(name) }
}
