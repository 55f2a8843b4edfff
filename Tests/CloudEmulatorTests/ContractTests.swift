import CloudEmulator
import Foundation
import Testing

/// The emulator's bodies and headers against the recorded real Keystone (Zed) and cinder-api (Zed)
/// exchanges: same field names, same JSON types (ids and values differ).
@Suite("Contract: emulator vs recorded real responses")
struct ContractTests {
    static let recorded = OpenStackSDKTests.repository + "/Tests/OpenStackClientTests/Recorded"

    /// Headers whose presence the contract checks when the real response has them.
    static let checkedHeaders = [
        "OpenStack-API-Version", "Vary", "x-openstack-request-id", "Content-Type", "X-Subject-Token", "WWW-Authenticate",
        "Retry-After", "Location",
    ]

    static func recordedExchange(_ name: String) throws -> (body: JSON?, headers: [String]) {
        let base = recorded + "/" + name
        let headerText = try String(contentsOfFile: base + ".headers", encoding: .utf8)
        let headers = headerText.split(separator: "\n").dropFirst().compactMap { $0.split(separator: ":").first.map(String.init) }
        let body = FileManager.default.contents(atPath: base + ".json").flatMap { try? JSON.parse(Array($0)) }
        return (body, headers)
    }

    /// Differences in field names and types between `real` and `emulated`, as paths.
    static func shapeDifferences(_ real: JSON, _ emulated: JSON, path: String = "") -> [String] {
        // Metadata keys are data, not schema.
        if path.hasSuffix("/metadata") { return [] }
        switch (real, emulated) {
        case (.null, _), (_, .null): return []
        case (.object(let a), .object(let b)):
            var out: [String] = []
            let keysA = Set(a.map(\.0))
            let keysB = Set(b.map(\.0))
            for key in keysA.subtracting(keysB) { out.append("\(path)/\(key) missing") }
            for key in keysB.subtracting(keysA) { out.append("\(path)/\(key) extra") }
            for (key, value) in a { if let other = emulated[key] { out += shapeDifferences(value, other, path: path + "/" + key) } }
            return out
        case (.array(let a), .array(let b)):
            guard let first = a.first, let other = b.first else { return [] }
            return shapeDifferences(first, other, path: path + "[0]")
        case (.int, .int), (.double, .double), (.int, .double), (.double, .int), (.string, .string), (.bool, .bool): return []
        default: return ["\(path): real \(real.text.prefix(40)) vs emulated \(emulated.text.prefix(40))"]
        }
    }

    static func check(_ name: String, _ response: TestResponse, status: Int? = nil) throws {
        let real = try recordedExchange(name)
        if let body = real.body {
            let emulated = try #require(response.json, "\(name): the emulator sent no JSON body")
            let differences = shapeDifferences(body, emulated)
            #expect(differences.isEmpty, "\(name): \(differences.joined(separator: "; "))")
        }
        let ours = Set(response.headers.map { $0.name.lowercased() })
        for header in checkedHeaders where real.headers.contains(where: { $0.lowercased() == header.lowercased() }) {
            #expect(ours.contains(header.lowercased()), "\(name): header \(header) missing")
        }
        if let status { #expect(response.status == status, "\(name)") }
    }

    @Test("Keystone: version documents, tokens, errors")
    func keystone() async throws {
        try await withTestCloud { cloud in
            try Self.check("real-keystone/00-version-root", try await cloud.send("GET", "/"), status: 300)
            try Self.check("real-keystone/00-version-v3", try await cloud.send("GET", "/v3"), status: 200)
            let password = #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"admin-secret"}}},"scope":{"project":{"name":"admin","domain":{"name":"Default"}}}}}"#
            let token = try await cloud.send("POST", "/v3/auth/tokens", json: password)
            try Self.check("real-keystone/01-password-project-scoped-by-name", token, status: 201)
            let appCredential = #"{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"name":"backup-plugin","user":{"name":"backup-svc","domain":{"name":"Default"}},"secret":"app-secret"}}}}"#
            try Self.check("real-keystone/41-app-cred-token-by-id", try await cloud.send("POST", "/v3/auth/tokens", json: appCredential), status: 201)
            let wrong = password.replacingOccurrences(of: "admin-secret", with: "wrong")
            try Self.check("real-keystone/50-error-wrong-password", try await cloud.send("POST", "/v3/auth/tokens", json: wrong), status: 401)
            let subject = try #require(token.header("X-Subject-Token"))
            try Self.check(
                "real-keystone/35-validate-token",
                try await cloud.send("GET", "/v3/auth/tokens", token: subject, headers: [("X-Subject-Token", subject)]), status: 200)
            try Self.check(
                "real-keystone/55-error-validate-invalid-subject",
                try await cloud.send("GET", "/v3/auth/tokens", token: subject, headers: [("X-Subject-Token", "gAAAAAnope")]), status: 404)
        }
    }

    @Test("Cinder: volumes, snapshots, microversion errors, quota, no token")
    func cinder() async throws {
        try await withTestCloud { cloud in
            let token = try await cloud.tenantToken()
            func v(_ version: String) -> [(String, String)] { [("OpenStack-API-Version", "volume \(version)")] }
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes"), token: token, headers: v("3.70"),
                json: #"{"volume":{"size":1,"name":"vol-a","metadata":{"k":"v"}}}"#)
            try Self.check("real-cinder-api/02-create-volume", created, status: 202)
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try Self.check("real-cinder-api/03-show-volume-creating", try await cloud.send("GET", cloud.volumePath("/volumes/\(id)"), token: token, headers: v("3.64")), status: 200)
            try Self.check("real-cinder-api/04-volumes-detail-limit1", try await cloud.send("GET", cloud.volumePath("/volumes/detail?limit=1"), token: token), status: 200)
            try Self.check("real-cinder-api/08c-version-latest", try await cloud.send("GET", cloud.volumePath("/volumes/detail?limit=1"), token: token, headers: v("latest")), status: 200)
            try Self.check("real-cinder-api/08-version-too-high", try await cloud.send("GET", cloud.volumePath("/volumes"), token: token, headers: v("3.99")), status: 406)
            try Self.check("real-cinder-api/08b-version-malformed", try await cloud.send("GET", cloud.volumePath("/volumes"), token: token, headers: v("3.x")), status: 400)
            try Self.check("real-cinder-api/07-show-unknown-volume", try await cloud.send("GET", cloud.volumePath("/volumes/00000000-0000-0000-0000-000000000000"), token: token), status: 404)
            try Self.check("real-cinder-api/09-no-token", try await cloud.send("GET", cloud.volumePath("/volumes")), status: 401)
            try await cloud.waitForVolume(id, status: "available", token: token)
            let snapshot = try await cloud.send(
                "POST", cloud.volumePath("/snapshots"), token: token,
                json: #"{"snapshot":{"volume_id":"\#(id)","name":"snap-1","description":"backup run 1","force":true,"metadata":{"backup":"yes"}}}"#)
            try Self.check("real-cinder-api/12-snapshot-create-force-true", snapshot, status: 202)
            try Self.check("real-cinder-api/13-snapshots-detail", try await cloud.send("GET", cloud.volumePath("/snapshots/detail"), token: token, headers: v("3.65")), status: 200)
            try Self.check(
                "real-cinder-api/06-snapshot-force-false-3.66",
                try await cloud.send("POST", cloud.volumePath("/snapshots"), token: token, headers: v("3.66"), json: #"{"snapshot":{"volume_id":"\#(id)","force":false}}"#),
                status: 400)
            try Self.check("real-cinder-api/18-show-snapshot-unknown", try await cloud.send("GET", cloud.volumePath("/snapshots/00000000-0000-0000-0000-000000000000"), token: token), status: 404)
            for _ in 0..<6 { _ = try await cloud.send("POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1}}"#) }
            try Self.check("real-cinder-api/19b-create-over-quota", try await cloud.send("POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1}}"#), status: 413)
        }
    }
}
