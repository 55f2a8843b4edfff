import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// `osbackup emulator serve` as a process: it prints its auth URL, answers `inventory` while it runs,
/// stops cleanly on SIGTERM, and a crash-like fault kills it so that a restart on the same state
/// directory carries on where it died.
@Suite("osbackup emulator serve")
struct EmulatorCommandTests {
    static let seedYAML = """
        projects: [{name: admin}]
        users: [{name: admin, password: admin-secret, roles: {admin: [admin]}, default_project: admin}]
        flavors: [{name: m1.small, vcpus: 1, ram: 2048, disk: 20}]
        servers:
          - {name: backup-proxy, project: admin, flavor: m1.small, proxy: true, volumes: [{name: proxy-root, size: 4}]}
        """

    struct Answer {
        var status: Int
        var json: [String: Any]
        var subjectToken: String?
    }

    static func send(_ http: HTTPClient, _ method: String, _ url: String, token: String? = nil, json: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "X-Auth-Token", value: token) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        return Answer(status: Int(response.status.code), json: object, subjectToken: response.headers.first(name: "X-Subject-Token"))
    }

    static func adminToken(_ http: HTTPClient, _ serve: EmulatorProcess) async throws -> (token: String, projectID: String) {
        let answer = try await send(
            http, "POST", serve.authURL + "/auth/tokens",
            json: #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin-secret"}}}}}"#)
        let project = ((answer.json["token"] as? [String: Any])?["project"] as? [String: Any])?["id"] as? String
        return (try #require(answer.subjectToken), try #require(project))
    }

    static func volumeStatus(_ http: HTTPClient, _ serve: EmulatorProcess, token: String, project: String, id: String) async throws -> String? {
        let answer = try await send(http, "GET", "\(serve.baseURL)/volume/v3/\(project)/volumes/\(id)", token: token)
        return (answer.json["volume"] as? [String: Any])?["status"] as? String
    }

    @Test("a crash-like fault kills the process mid-request; a restart on the same state carries on")
    func crashAndRestart() async throws {
        try await withTemporaryDirectory { directory in
            try Self.seedYAML.write(toFile: directory + "/seed.yaml", atomically: true, encoding: .utf8)
            try "crash_after_requests: 4\n".write(toFile: directory + "/faults.yaml", atomically: true, encoding: .utf8)
            let common = ["--state", directory + "/state", "--seed", directory + "/seed.yaml", "--size-unit", "mib", "--transition-delay", "8"]  // long enough to see "creating" on a loaded machine
            let http = HTTPClient.shared

            let first = try await EmulatorProcess(common + ["--faults", directory + "/faults.yaml"])
            defer { first.stop() }
            let (token, project) = try await Self.adminToken(http, first)  // request 1
            let created = try await Self.send(  // request 2
                http, "POST", "\(first.baseURL)/volume/v3/\(project)/volumes", token: token,
                json: #"{"volume":{"size":1,"name":"survivor"}}"#)
            let id = try #require((created.json["volume"] as? [String: Any])?["id"] as? String)
            #expect(try await Self.volumeStatus(http, first, token: token, project: project, id: id) == "creating")  // request 3
            await #expect(throws: (any Error).self) {  // request 4: no answer, the process dies
                _ = try await Self.send(http, "GET", "\(first.baseURL)/volume/v3/\(project)/volumes/\(id)", token: token)
            }
            #expect(await first.exitStatus() == 70)

            // Restart on the same state and port, without the fault: the token and the volume survived,
            // and the creation that was under way when it died completes.
            let second = try await EmulatorProcess(
                common + ["--port", String(first.port), "--fault-rule", "method=GET,path=/flavors,rate=1,status=503,retry_after=1"])
            defer { second.stop() }
            #expect(second.authURL == first.authURL)
            var status: String?
            for _ in 0..<400 {
                status = try await Self.volumeStatus(http, second, token: token, project: project, id: id)
                if status == "available" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(status == "available")
            // A fault given as a flag.
            #expect(try await Self.send(http, "GET", "\(second.baseURL)/compute/v2.1/flavors", token: token).status == 503)

            // inventory reads the state while the emulator runs.
            let inventory = try osbackupArray(["emulator", "inventory", "--state", directory + "/state", "--json"])
            #expect(inventory.status == 0)
            #expect(inventory.stdout.contains("\"survivor\""))

            kill(second.process.processIdentifier, SIGTERM)
            #expect(await second.exitStatus() == 0, "SIGTERM is a clean stop")
        }
    }

    @Test("--keystone needs --region and a service account with a password, said before anything starts")
    func keystoneRefusals() throws {
        try withTemporaryDirectory { directory in
            let noRegion = try osbackupArray(
                ["emulator", "serve", "--state", directory + "/state", "--keystone", "http://127.0.0.1:9/v3"], environment: [:])
            #expect(noRegion.status == 2)
            #expect(noRegion.stderr.contains("--keystone needs --region"))
            let noPassword = try osbackupArray(
                ["emulator", "serve", "--state", directory + "/state", "--keystone", "http://127.0.0.1:9/v3", "--region", "R"],
                environment: ["OS_USERNAME": "svc"])
            #expect(noPassword.status == 2)
            #expect(noPassword.stderr.contains("no password configured for user svc"))
            #expect(!FileManager.default.fileExists(atPath: directory + "/state"), "nothing is created before the checks pass")
        }
    }
}
