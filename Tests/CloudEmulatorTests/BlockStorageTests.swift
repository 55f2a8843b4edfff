import CloudEmulator
import Foundation
import Testing

@Suite("Cinder v3 subset")
struct BlockStorageTests {
    @Test("microversions: default 3.0, echo and Vary, latest, 406 computeFault, 400 malformed")
    func microversions() async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            let plain = try await cloud.send("GET", cloud.volumePath("/volumes/detail"), token: token)
            #expect(plain.status == 200)
            #expect(plain.header("OpenStack-API-Version") == "volume 3.0")
            #expect(plain.header("Vary") == "OpenStack-API-Version")
            let latest = try await cloud.send("GET", cloud.volumePath("/volumes"), token: token, headers: [("OpenStack-API-Version", "volume latest")])
            #expect(latest.header("OpenStack-API-Version") == "volume 3.70")
            let high = try await cloud.send("GET", cloud.volumePath("/volumes"), token: token, headers: [("OpenStack-API-Version", "volume 3.99")])
            #expect(high.status == 406)
            #expect(high.json?["computeFault"]?["message"]?.string == "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.70.")
            let bad = try await cloud.send("GET", cloud.volumePath("/volumes"), token: token, headers: [("OpenStack-API-Version", "volume 3.x")])
            #expect(bad.status == 400)
            #expect(bad.json?["badRequest"]?["code"] == .int(400))
            let wrongProject = try await cloud.send("GET", cloud.volumePath("/volumes", project: cloud.adminProjectID), token: token)
            #expect(wrongProject.json?["badRequest"]?["message"]?.string == "Malformed request url")
            let noToken = try await cloud.send("GET", cloud.volumePath("/volumes"))
            #expect(noToken.status == 401)
            #expect(noToken.header("WWW-Authenticate") != nil)
        }
    }

    @Test("create → available, snapshot, volume from snapshot copies the data, delete → 404")
    func lifecycle() async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            let v370 = [("OpenStack-API-Version", "volume 3.70")]
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes"), token: token, headers: v370,
                json: #"{"volume":{"size":2,"name":"vol-a","metadata":{"k":"v"}}}"#)
            #expect(created.status == 202)
            #expect(created.json?["volume"]?["status"]?.string == "creating")
            #expect(created.json?["volume"]?["bootable"]?.string == "false")
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(id, status: "available", token: token)
            let file = cloud.running.volumeFile(volumeID: id)
            #expect(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int == 2 << 20)
            let handle = try #require(FileHandle(forWritingAtPath: file))
            try handle.write(contentsOf: Data("before".utf8))
            try handle.close()

            let snap = try await cloud.send(
                "POST", cloud.volumePath("/snapshots"), token: token, json: #"{"snapshot":{"volume_id":"\#(id)","name":"s1"}}"#)
            #expect(snap.status == 202)
            let snapshotID = try #require(snap.json?["snapshot"]?["id"]?.string)
            // The snapshot is point-in-time: later writes to the volume do not reach it.
            let again = try #require(FileHandle(forWritingAtPath: file))
            try again.write(contentsOf: Data("AFTER!".utf8))
            try again.close()
            _ = try await cloud.waitFor(cloud.volumePath("/snapshots/\(snapshotID)"), token: token) {
                $0.json?["snapshot"]?["status"]?.string == "available"
            }
            let tooSmall = try await cloud.send(
                "POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1,"snapshot_id":"\#(snapshotID)"}}"#)
            #expect(tooSmall.status == 400)
            let restored = try await cloud.send(
                "POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"snapshot_id":"\#(snapshotID)","name":"r"}}"#)
            #expect(restored.status == 202)
            #expect(restored.json?["volume"]?["size"] == .int(2))
            let restoredID = try #require(restored.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(restoredID, status: "available", token: token)
            let data = try #require(FileManager.default.contents(atPath: cloud.running.volumeFile(volumeID: restoredID)))
            #expect(data.prefix(6) == Data("before".utf8))

            let withSnapshots = try await cloud.send("DELETE", cloud.volumePath("/volumes/\(id)"), token: token)
            #expect(withSnapshots.status == 400)
            #expect(try await cloud.send("DELETE", cloud.volumePath("/snapshots/\(snapshotID)"), token: token).status == 202)
            _ = try await cloud.waitFor(cloud.volumePath("/snapshots/\(snapshotID)"), token: token) { $0.status == 404 }
            #expect(try await cloud.send("DELETE", cloud.volumePath("/volumes/\(id)"), token: token).status == 202)
            try await cloud.waitForVolume(id, status: "deleted", token: token)
            #expect(!FileManager.default.fileExists(atPath: file))
            let missing = try await cloud.send("GET", cloud.volumePath("/volumes/\(id)"), token: token)
            #expect(missing.json?["itemNotFound"]?["message"]?.string == "Volume \(id) could not be found.")
        }
    }

    @Test("snapshot force rules of an in-use volume below and above 3.66", arguments: [
        ("3.0", nil as Bool?, 400), ("3.65", false, 400), ("3.65", true, 202), ("3.66", nil, 202), ("3.66", true, 202),
        ("3.66", false, 400),
    ])
    func forceRules(version: String, force: Bool?, status: Int) async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            let volumeID = EmulatorSeed.volumeID("web-1-root")
            let forceText = force.map { #","force":\#($0)"# } ?? ""
            let response = try await cloud.send(
                "POST", cloud.volumePath("/snapshots"), token: token, headers: [("OpenStack-API-Version", "volume \(version)")],
                json: #"{"snapshot":{"volume_id":"\#(volumeID)"\#(forceText)}}"#)
            #expect(response.status == status, "\(version) force=\(String(describing: force))")
            if status == 400 && version == "3.66" {
                #expect(response.json?["badRequest"]?["message"]?.string?.hasPrefix("Since microversion 3.66") == true)
            } else if status == 400 {
                #expect(response.json?["badRequest"]?["message"]?.string == "Invalid volume: Volume \(volumeID) status must be available, but current status is: in-use.")
            }
        }
    }

    @Test("filters, metadata filter, pagination with volumes_links, 400 on unknown filters from 3.31, quota 413")
    func listing() async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            for index in 0..<3 {
                let response = try await cloud.send(
                    "POST", cloud.volumePath("/volumes"), token: token,
                    json: #"{"volume":{"size":1,"name":"p\#(index)","metadata":{"n":"\#(index)"}}}"#)
                #expect(response.status == 202)
            }
            let byName = try await cloud.send("GET", cloud.volumePath("/volumes/detail?name=p1"), token: token)
            #expect(byName.json?["volumes"]?.array?.count == 1)
            let byMetadata = try await cloud.send("GET", cloud.volumePath("/volumes/detail?metadata=%7B%22n%22%3A%222%22%7D"), token: token)
            #expect(byMetadata.json?["volumes"]?.array?.first?["name"]?.string == "p2")
            var seen: [String] = []
            var next: String? = cloud.volumePath("/volumes/detail?limit=2")
            while let url = next {
                let page = try await cloud.send("GET", url, token: token)
                #expect(page.status == 200)
                seen += page.json?["volumes"]?.array?.compactMap { $0["id"]?.string } ?? []
                next = page.json?["volumes_links"]?.array?.first?["href"]?.string
            }
            #expect(seen.count == 5)
            #expect(Set(seen).count == 5)
            let bogus = try await cloud.send(
                "GET", cloud.volumePath("/volumes?bogus=1"), token: token, headers: [("OpenStack-API-Version", "volume 3.31")])
            #expect(bogus.json?["badRequest"]?["message"]?.string == "Invalid filters bogus are found in query options.")
            let unknownMarker = try await cloud.send("GET", cloud.volumePath("/volumes/detail?marker=nope"), token: token)
            #expect(unknownMarker.status == 404)
            // Quota: 8 volumes in the tenant (2 seeded + 3 + 3 more), the 9th is refused.
            for index in 0..<3 {
                _ = try await cloud.send("POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1,"name":"q\#(index)"}}"#)
            }
            let over = try await cloud.send("POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1}}"#)
            #expect(over.status == 413)
            #expect(over.header("Retry-After") == "0")
            #expect(over.json?["overLimit"]?["message"]?.string == "VolumeLimitExceeded: Maximum number of volumes allowed (8) exceeded for quota 'volumes'.")
        }
    }

    @Test("volume metadata set, merge and delete")
    func metadata() async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            let id = EmulatorSeed.volumeID("web-1-root")
            let merged = try await cloud.send("POST", cloud.volumePath("/volumes/\(id)/metadata"), token: token, json: #"{"metadata":{"a":"1"}}"#)
            #expect(merged.json?["metadata"]?["a"]?.string == "1")
            #expect(try await cloud.send("DELETE", cloud.volumePath("/volumes/\(id)/metadata/a"), token: token).status == 200)
            let shown = try await cloud.send("GET", cloud.volumePath("/volumes/\(id)/metadata"), token: token)
            #expect(shown.json?["metadata"] == .object([]))
        }
    }
}
