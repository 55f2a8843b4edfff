import AsyncHTTPClient
import CloudEmulator
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// The seed the tests use: an admin project with the proxy, a tenant with two servers, sizes in MiB.
let testSeedYAML = """
    projects:
      - name: admin
      - name: tenant
        quota: {volumes: 8, snapshots: 8, gigabytes: 200}
    users:
      - name: admin
        password: admin-secret
        roles: {admin: [admin], tenant: [admin]}
        default_project: admin
      - name: backup-svc
        password: svc-secret
        roles: {tenant: [member]}
    application_credentials:
      - {name: backup-plugin, user: backup-svc, project: tenant, secret: app-secret}
    flavors:
      - {name: m1.small, vcpus: 1, ram: 2048, disk: 20, extra_specs: {"hw:cpu_policy": shared}}
    networks:
      - {name: private}
    keypairs: [mykey]
    servers:
      - name: backup-proxy
        project: admin
        user: admin
        flavor: m1.small
        proxy: true
        max_disk_devices: 3
        networks: [private]
        volumes:
          - {name: proxy-root, size: 4}
      - name: web-1
        project: tenant
        flavor: m1.small
        networks: [private]
        key_name: mykey
        metadata: {role: web}
        volumes:
          - name: web-1-root
            size: 4
            content: [{text: "hello world\\n", length: 64K}, {zero: 1M}, {random: 256K, seed: 3}]
      - name: db-1
        project: tenant
        flavor: m1.small
        task_state: image_snapshot
        volumes:
          - {name: db-1-root, size: 2}
    """

/// A response as the tests see it.
struct TestResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var json: JSON? { body.isEmpty ? nil : try? JSON.parse(body) }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// A running test emulator plus an HTTP client and helpers for tokens and calls.
struct TestCloud {
    let running: RunningEmulator
    let http: HTTPClient

    var adminProjectID: String { EmulatorSeed.projectID("admin") }
    var tenantProjectID: String { EmulatorSeed.projectID("tenant") }
    var proxyID: String { EmulatorSeed.serverID("backup-proxy") }

    /// Sends a request; `path` is relative to the base URL unless absolute.
    func send(
        _ method: String, _ path: String, token: String? = nil, headers extra: [(String, String)] = [],
        json: String? = nil
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : running.baseURL + path)
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "X-Auth-Token", value: token) }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 24)
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
    }

    /// A project-scoped token of a seeded user.
    func token(user: String = "admin", password: String = "admin-secret", project: String = "admin") async throws -> String {
        let body = """
            {"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"\(user)","domain":{"name":"Default"},"password":"\(password)"}}},
             "scope":{"project":{"name":"\(project)","domain":{"id":"default"}}}}}
            """
        let response = try await send("POST", "/v3/auth/tokens", json: body)
        guard response.status == 201, let token = response.header("X-Subject-Token") else {
            throw TestFailure("token for \(user): HTTP \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return token
    }

    /// The tenant user's token.
    func tenantToken() async throws -> String { try await token(user: "backup-svc", password: "svc-secret", project: "tenant") }

    /// A Cinder path of the tenant (or `project`).
    func volumePath(_ rest: String, project: String? = nil) -> String {
        "/volume/v3/\(project ?? tenantProjectID)\(rest)"
    }

    /// Polls a JSON document until `done` says so (or 10 s pass).
    func waitFor(
        _ path: String, token: String, headers: [(String, String)] = [], _ done: (TestResponse) -> Bool
    ) async throws -> TestResponse {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let response = try await send("GET", path, token: token, headers: headers)
            if done(response) { return response }
            if Date() > deadline { throw TestFailure("timeout waiting on \(path): last \(response.status) \(String(decoding: response.body, as: UTF8.self))") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for a volume's status (404 counts as `deleted`).
    func waitForVolume(_ id: String, status: String, token: String, project: String? = nil) async throws {
        _ = try await waitFor(volumePath("/volumes/\(id)", project: project), token: token) { response in
            status == "deleted" ? response.status == 404 : response.json?["volume"]?["status"]?.string == status
        }
    }
}

/// A failure with a message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with an emulator seeded with `seed` (default `testSeedYAML`; sizes in MiB, 50 ms steps) in a
/// fresh directory, and an HTTP client.
func withTestCloud<Result: Sendable>(
    seed seedYAML: String = testSeedYAML, faults: FaultPlan = FaultPlan(), tokenLifetime: TimeInterval = 3600, stateDirectory: String? = nil,
    usesLoopDevices: Bool = false, transitionDelay: TimeInterval = 0.05, _ body: (TestCloud) async throws -> Result
) async throws -> Result {
    let directory = stateDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("osbackup-emulator-\(UUID().uuidString)").path
    defer { if stateDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
    let configuration = EmulatorConfiguration(
        stateDirectory: directory, tokenLifetime: tokenLifetime, transitionDelay: transitionDelay, sizeUnit: .mebibyte,
        usesLoopDevices: usesLoopDevices, faults: faults)
    let seed = try EmulatorSeed.parse(yaml: seedYAML)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        let result = try await withRunningEmulator(configuration: configuration, seed: seed, logger: testLogger) { running in
            try await body(TestCloud(running: running, http: http))
        }
        try await http.shutdown()
        return result
    } catch {
        try? await http.shutdown()
        throw error
    }
}

/// Warnings and errors only, so test output stays readable.
let testLogger: Logger = {
    var logger = Logger(label: "osbackup.emulator.test")
    logger.logLevel = .warning
    return logger
}()
