import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing

@Suite("Faults and persistence")
struct FaultTests {
    @Test("a per-route 503 with Retry-After and a non-JSON body, as from a load balancer")
    func routeError() async throws {
        let plan = FaultPlan(rules: [FaultRule(method: "POST", path: "/snapshots", rate: 1, status: 503, retryAfter: 2)])
        try await withTestCloud(faults: plan) { cloud in
            let token = try await cloud.tenantToken()
            let response = try await cloud.send(
                "POST", cloud.volumePath("/snapshots"), token: token, json: #"{"snapshot":{"volume_id":"x"}}"#)
            #expect(response.status == 503)
            #expect(response.header("Retry-After") == "2")
            #expect(response.json == nil)
            #expect(try await cloud.send("GET", cloud.volumePath("/snapshots"), token: token).status == 200)
        }
    }

    @Test("a 429 with Retry-After and a 500 carry the services' JSON fault bodies")
    func rateLimitAndServerError() async throws {
        let plan = FaultPlan(rules: [
            FaultRule(method: "GET", path: "/servers/detail", rate: 1, status: 429, retryAfter: 3),
            FaultRule(method: "GET", path: "/os-volume_attachments", rate: 1, status: 500),
        ])
        try await withTestCloud(faults: plan) { cloud in
            let token = try await cloud.token()
            let limited = try await cloud.send("GET", "/compute/v2.1/servers/detail", token: token)
            #expect(limited.status == 429)
            #expect(limited.header("Retry-After") == "3")
            #expect(limited.json?["overLimit"]?["code"]?.int == 429)
            #expect(limited.json?["overLimit"]?["retryAfter"]?.string == "3")
            let failed = try await cloud.send("GET", "/compute/v2.1/servers/\(cloud.proxyID)/os-volume_attachments", token: token)
            #expect(failed.status == 500)
            #expect(failed.json?["computeFault"]?["message"]?.string?.hasPrefix("Unexpected API Error") == true)
            #expect(try await cloud.send("GET", "/compute/v2.1/servers", token: token).status == 200, "other routes are untouched")
        }
    }

    @Test("latency is added to a matching request")
    func latency() async throws {
        let plan = FaultPlan(rules: [FaultRule(path: "/flavors", latencyMilliseconds: 400)])
        try await withTestCloud(faults: plan) { cloud in
            let token = try await cloud.token()
            let clock = ContinuousClock()
            var status = 0
            let slow = try await clock.measure {
                status = try await cloud.send("GET", "/compute/v2.1/flavors", token: token).status
            }
            #expect(status == 200)
            // A lower bound only: injected latency cannot make a request faster.
            #expect(slow >= .milliseconds(400))
        }
    }

    @Test("the typed client rides out a 50% rate of 503 and 500 answers on reads (retries, Retry-After)")
    func clientRidesOutFaults() async throws {
        let plan = FaultPlan(seed: 5, rules: [
            FaultRule(method: "GET", path: "/servers/detail", rate: 0.5, status: 503, retryAfter: 0),
            FaultRule(method: "GET", path: "/volumes/detail", rate: 0.5, status: 500),
        ])
        try await withTestCloud(faults: plan) { cloud in
            let configuration = CloudConfiguration(
                authURL: cloud.running.authURL,
                credentials: .password(
                    user: UserReference(name: "admin", domainName: "Default"), password: Secret("admin-secret"),
                    project: ProjectReference(name: "admin", domainName: "Default")))
            try await OpenStackTransport.withTransport(
                retryPolicy: RetryPolicy(maximumAttempts: 8, initialDelay: .milliseconds(10), maximumDelay: .milliseconds(50))
            ) { transport in
                let session = KeystoneSession(configuration: configuration, transport: transport, logger: testLogger)
                let compute = try await ComputeClient.connect(session: session)
                let blockStorage = try await BlockStorageClient.connect(session: session)
                for _ in 0..<6 {
                    #expect(try await compute.servers().contains { $0.name == "backup-proxy" })
                    #expect(try await blockStorage.volumes().contains { $0.name == "proxy-root" })
                }
            }
        }
    }

    @Test("the same seed fails the same requests")
    func deterministic() async throws {
        let plan = FaultPlan(seed: 42, rules: [FaultRule(path: "/compute/v2.1/servers", rate: 0.5, status: 429, retryAfter: 1)])
        func statuses() async throws -> [Int] {
            try await withTestCloud(faults: plan) { cloud in
                let token = try await cloud.tenantToken()
                var out: [Int] = []
                for _ in 0..<12 { out.append(try await cloud.send("GET", "/compute/v2.1/servers", token: token).status) }
                return out
            }
        }
        let first = try await statuses()
        #expect(first == (try await statuses()))
        #expect(first.contains(429) && first.contains(200))
    }

    @Test("a stuck status, a late device and a token that stops working early")
    func stuckLateAndShortTokens() async throws {
        let plan = FaultPlan(stuck: ["snapshot:creating"], deviceDelayMilliseconds: 1500, tokenValidForSeconds: 8)
        // Generous delays: the steps before each check must fit in them even on a loaded machine.
        try await withTestCloud(faults: plan) { cloud in
            let admin = try await cloud.token()
            let issued = ContinuousClock.now
            let project = cloud.adminProjectID
            let created = try await cloud.send(
                "POST", cloud.volumePath("/volumes", project: project), token: admin, json: #"{"volume":{"size":1}}"#)
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(id, status: "available", token: admin, project: project)
            let snapshot = try await cloud.send(
                "POST", cloud.volumePath("/snapshots", project: project), token: admin, json: #"{"snapshot":{"volume_id":"\#(id)"}}"#)
            let snapshotID = try #require(snapshot.json?["snapshot"]?["id"]?.string)
            _ = try await cloud.send(
                "POST", "/compute/v2.1/servers/\(cloud.proxyID)/os-volume_attachments", token: admin,
                json: #"{"volumeAttachment":{"volumeId":"\#(id)"}}"#)
            try await cloud.waitForVolume(id, status: "in-use", token: admin, project: project)
            #expect(!FileManager.default.fileExists(atPath: cloud.running.devicePath(volumeID: id)))
            try await Task.sleep(for: .milliseconds(2000))
            #expect(FileManager.default.fileExists(atPath: cloud.running.devicePath(volumeID: id)))
            let stuck = try await cloud.send("GET", cloud.volumePath("/snapshots/\(snapshotID)", project: project), token: admin)
            #expect(stuck.json?["snapshot"]?["status"]?.string == "creating")
            try await Task.sleep(until: issued + .milliseconds(8300))
            #expect(try await cloud.send("GET", cloud.volumePath("/volumes", project: project), token: admin).status == 401)
        }
    }

    @Test("state persists across restarts and the seed is applied once")
    func persistence() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osbackup-emulator-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let id = try await withTestCloud(stateDirectory: directory) { cloud in
            let token = try await cloud.tenantToken()
            let created = try await cloud.send("POST", cloud.volumePath("/volumes"), token: token, json: #"{"volume":{"size":1,"name":"keep"}}"#)
            let id = try #require(created.json?["volume"]?["id"]?.string)
            try await cloud.waitForVolume(id, status: "available", token: token)
            return id
        }
        try await withTestCloud(stateDirectory: directory) { cloud in
            let token = try await cloud.tenantToken()
            let shown = try await cloud.send("GET", cloud.volumePath("/volumes/\(id)"), token: token)
            #expect(shown.json?["volume"]?["name"]?.string == "keep")
            #expect(try cloud.running.inventory().servers.count == 3)
            // The proxy's root disk device comes back after the restart.
            #expect(FileManager.default.fileExists(atPath: cloud.running.devicePath(volumeID: EmulatorSeed.volumeID("proxy-root"))))
        }
    }

    @Test("a fault rule from its command-line form, and its errors")
    func ruleFlag() throws {
        let rule = try FaultRule(flag: "method=POST, path=/snapshots,rate=0.5,status=503,retry_after=2,latency_ms=30")
        #expect(rule.method == "POST" && rule.path == "/snapshots" && rule.rate == 0.5 && rule.status == 503)
        #expect(rule.retryAfter == 2 && rule.latencyMilliseconds == 30)
        #expect(try FaultRule(flag: "path=/x").status == 500)
        for bad in ["rate=1", "path=/x,colour=red", "path=/x,rate=often"] {
            let error = #expect(throws: EmulatorError.self) { try FaultRule(flag: bad) }
            #expect(error?.description.contains("--fault-rule") == true, "\(bad)")
        }
    }

    @Test("demo.yaml loads")
    func demoSeed() throws {
        let seed = try EmulatorSeed.load(path: OpenStackSDKTests.repository + "/samples/emulator/demo.yaml")
        #expect(seed.servers?.contains { $0.proxy == true } == true)
    }
}
