import Foundation
import Logging
import Testing
import TestSupport
@testable import OpenStackClient

/// Retries, Retry-After, TLS trust, ambiguous creates, pagination and microversion headers, against a real
/// HTTP(S) server that answers from a script.
@Suite("Client behaviour against a scripted server", .serialized)
struct ClientBehaviourTests {
    typealias Rule = ScriptedServer.Rule

    private func withServer<Result>(
        _ rules: [Rule], tls: Bool = false, _ body: (ScriptedServer, String) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osbackup-scripted-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificates = tls ? try makeTestCertificates(in: directory) : nil
        let server = try ScriptedServer(rules: rules, directory: directory, tls: certificates.map { ($0.cert, $0.key) })
        defer { server.stop() }
        return try await body(server, certificates?.ca ?? "")
    }

    /// A session against the scripted server, its transport shut down on every path out.
    private func withSession<Result>(
        _ server: ScriptedServer, ca: String? = nil, verify: Bool = true,
        retry: RetryPolicy = .init(maximumAttempts: 4, initialDelay: .milliseconds(50)),
        _ body: (KeystoneSession) async throws -> Result
    ) async throws -> Result {
        let configuration = CloudConfiguration(
            authURL: server.baseURL + "/v3",
            credentials: .password(user: UserReference(name: "tester"), password: Secret("pw"), project: ProjectReference(name: "proj")),
            caCertificatePath: ca, verifyTLS: verify)
        return try await OpenStackTransport.withTransport(
            caCertificatePath: ca, verifyTLS: verify, proxies: ProxySettings(), retryPolicy: retry, timeout: .seconds(10)
        ) { transport in
            try await body(KeystoneSession(configuration: configuration, transport: transport, logger: Logger(label: "t")))
        }
    }

    static var novaVersion: [String: Any] { ["version": ["id": "v2.1", "status": "CURRENT", "version": "2.93", "min_version": "2.1"]] }
    static var cinderVersions: [String: Any] { ["versions": [["id": "v3.0", "status": "CURRENT", "version": "3.65", "min_version": "3.0"]]] }

    @Test("503 with Retry-After is retried after the given delay; 429 with back-off")
    func retryAfter() async throws {
        let rules = [
            ScriptedServer.tokenRule(),
            Rule(method: "GET", path: "/compute/v2.1/servers/s1", status: 503, headers: ["Retry-After": "1"], body: "busy", times: 1),
            Rule(method: "GET", path: "/compute/v2.1/servers/s1", status: 429, body: ["overLimit": ["code": 429, "message": "slow down"]], times: 1),
            Rule(method: "GET", path: "/compute/v2.1/servers/s1", status: 200, body: ["server": ["id": "s1", "name": "a", "status": "ACTIVE", "image": ""]]),
        ]
        try await withServer(rules) { server, _ async throws in
            let started = ContinuousClock.now
            let response = try await withSession(server) { session in
                try await session.send(serviceType: "compute", method: "GET", path: "/servers/s1")
            }
            let elapsed = ContinuousClock.now - started
            #expect(response.status == 200)
            #expect(server.requests.filter { $0.path == "/compute/v2.1/servers/s1" }.count == 3)
            #expect(elapsed >= .seconds(1), "Retry-After: 1 was honoured")
        }
    }

    @Test("a POST is not repeated after a 500; the error carries the request id and message")
    func postNotRetried() async throws {
        let rules = [
            ScriptedServer.tokenRule(),
            Rule(method: "POST", path: "/compute/v2.1/servers", status: 500,
                 headers: ["x-openstack-request-id": "req-abc"], body: ["computeFault": ["code": 500, "message": "Unexpected API Error."]]),
        ]
        try await withServer(rules) { server, _ async throws in
            let response = try await withSession(server) { session in
                try await session.send(serviceType: "compute", method: "POST", path: "/servers", body: Array("{}".utf8))
            }
            #expect(response.status == 500)
            #expect(server.requests.filter { $0.method == "POST" && $0.path == "/compute/v2.1/servers" }.count == 1)
            let error = OpenStackError.http(service: "compute", operation: "POST /servers", status: 500, requestID: response.requestID, body: response.body)
            #expect(error.description == "compute POST /servers answered 500 [req-abc]: Unexpected API Error. (the service failed; look it up in the compute logs by the request id)")
        }
    }

    @Test("an ambiguous create failure looks the volume up by its request tag instead of creating a second one")
    func idempotentVolumeCreate() async throws {
        let volume: [String: Any] = ["id": "vol-1", "status": "creating", "size": 1, "attachments": [], "metadata": ["osbackup_request": "t"]]
        let rules = [
            ScriptedServer.tokenRule(),
            Rule(method: "POST", path: "/volume/v3/p1/volumes", status: 502, body: "Bad Gateway", times: 1),
            Rule(method: "GET", path: "/volume/v3/p1/volumes/detail", status: 200, body: ["volumes": [volume]], times: 1),
            Rule(method: "GET", path: "/volume/v3/p1/volumes/detail", status: 200, body: ["volumes": []]),
            Rule(method: "GET", path: "/volume/v3/", status: 200, body: Self.cinderVersions),
        ]
        try await withServer(rules) { server, _ async throws in
            let created = try await withSession(server) { session in
                let cinder = try await BlockStorageClient.connect(session: session)
                return try await cinder.createVolume(VolumeCreateRequest(size: 1, name: "osbackup-tmp", metadata: ["osbackup_job": "j1"]))
            }
            #expect(created.id == "vol-1")
            let posts = server.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/volumes") }
            #expect(posts.count == 1, "the create was not repeated")
            let body = try #require(posts.first?.body)
            #expect(body.contains("\"osbackup_request\"") && body.contains("\"osbackup_job\":\"j1\""))
            let lookup = try #require(server.requests.first { $0.path.hasPrefix("/volume/v3/p1/volumes/detail") })
            #expect(lookup.path.contains("metadata=") && lookup.path.contains("osbackup_request"))
            #expect(posts.first?.headers["openstack-api-version"] == "volume 3.65")
        }
    }

    @Test("snapshots send force only below 3.66")
    func snapshotForce() async throws {
        let snapshot: [String: Any] = ["id": "snap-1", "status": "creating", "size": 1, "volume_id": "vol-1"]
        for (maximum, expectsForce) in [("3.65", true), ("3.70", false)] {
            let rules = [
                ScriptedServer.tokenRule(),
                Rule(method: "POST", path: "/volume/v3/p1/snapshots", status: 202, body: ["snapshot": snapshot]),
                Rule(method: "GET", path: "/volume/v3/", status: 200, body: ["versions": [["id": "v3.0", "version": maximum, "min_version": "3.0"]]]),
            ]
            try await withServer(rules) { server, _ async throws in
                _ = try await withSession(server) { session in
                    let cinder = try await BlockStorageClient.connect(session: session)
                    return try await cinder.createSnapshot(volumeID: "vol-1", name: "osbackup-snap")
                }
                let post = try #require(server.requests.first { $0.method == "POST" && $0.path.hasSuffix("/snapshots") })
                #expect(post.body.contains("\"force\":true") == expectsForce, "at \(maximum)")
                #expect(post.headers["openstack-api-version"] == "volume \(maximum)")
            }
        }
    }

    @Test("server lists follow servers_links until a page has no next link; Nova gets both microversion headers")
    func serverPagination() async throws {
        func server(_ id: String) -> [String: Any] { ["id": id, "name": id, "status": "ACTIVE", "image": ""] }
        let rules = [
            ScriptedServer.tokenRule(),
            Rule(method: "GET", path: "/compute/v2.1/servers/detail?limit=2&marker=b", status: 200, body: ["servers": [server("c")]]),
            Rule(method: "GET", path: "/compute/v2.1/servers/detail", status: 200,
                 body: ["servers": [server("a"), server("b")], "servers_links": [["rel": "next", "href": "http://127.0.0.1:$PORT/compute/v2.1/servers/detail?limit=2&marker=b"]]]),
            Rule(method: "GET", path: "/compute/v2.1", status: 200, body: Self.novaVersion),
        ]
        try await withServer(rules) { server, _ async throws in
            let (microversion, servers) = try await withSession(server) { session in
                let nova = try await ComputeClient.connect(session: session)
                return (nova.microversion, try await nova.servers(ServerFilter(pageSize: 2)))
            }
            #expect(microversion == Microversion(2, 93))
            #expect(servers.map(\.id) == ["a", "b", "c"])
            let list = try #require(server.requests.first { $0.path.hasPrefix("/compute/v2.1/servers/detail") })
            #expect(list.headers["openstack-api-version"] == "compute 2.93")
            #expect(list.headers["x-openstack-nova-api-version"] == "2.93")
            #expect(list.headers["x-auth-token"] == "scripted-token-1")
        }
    }

    @Test("attach answers 200 with a body below 2.101 and 202 without one from 2.101")
    func attachShapes() async throws {
        for (version, status) in [("2.93", 200), ("2.101", 202)] {
            let attachment: Any = status == 200 ? ["volumeAttachment": ["device": "/dev/vdb", "id": "v1", "serverId": "s1", "volumeId": "v1"]] : ""
            let rules = [
                ScriptedServer.tokenRule(),
                Rule(method: "POST", path: "/compute/v2.1/servers/s1/os-volume_attachments", status: status, body: attachment),
                Rule(method: "GET", path: "/compute/v2.1", status: 200, body: ["version": ["id": "v2.1", "version": version, "min_version": "2.1"]]),
            ]
            try await withServer(rules) { server, _ async throws in
                let result = try await withSession(server) { session in
                    let nova = try await ComputeClient.connect(session: session, maximum: Microversion(2, 101))
                    return try await nova.attachVolume(serverID: "s1", volumeID: "v1")
                }
                #expect((result?.volumeID == "v1") == (status == 200))
            }
        }
    }

    @Test("TLS: trusted with the cloud's CA bundle, refused without it, accepted with verify off")
    func tls() async throws {
        let rules = [ScriptedServer.tokenRule(scheme: "https")]
        try await withServer(rules, tls: true) { server, ca async throws in
            let trusted = try await withSession(server, ca: ca) { session in try await session.token() }
            #expect(trusted.userName == "tester")

            let error = try await withSession(server, retry: RetryPolicy(maximumAttempts: 1)) { session in
                await #expect(throws: OpenStackError.self) { try await session.token() }
            }
            #expect(error?.isTransportError == true)

            let insecure = try await withSession(server, verify: false) { session in try await session.token() }
            #expect(insecure.projectID == "p1")
        }
    }

    @Test("a status wait fails fast on error and reports the last status on timeout")
    func statusWaits() async throws {
        let rules = [
            ScriptedServer.tokenRule(),
            Rule(method: "GET", path: "/volume/v3/p1/volumes/bad", status: 200, body: ["volume": ["id": "bad", "status": "error", "size": 1, "attachments": []]]),
            Rule(method: "GET", path: "/volume/v3/p1/volumes/stuck", status: 200, body: ["volume": ["id": "stuck", "status": "creating", "size": 1, "attachments": []]]),
            Rule(method: "GET", path: "/volume/v3/", status: 200, body: Self.cinderVersions),
        ]
        try await withServer(rules) { server, _ async throws in
            try await withSession(server) { session in
                let cinder = try await BlockStorageClient.connect(
                    session: session, waitPolicy: StatusWaitPolicy(timeout: .seconds(1), initialInterval: .milliseconds(100), maximumInterval: .milliseconds(200)))
                let failed = await #expect(throws: OpenStackError.self) { try await cinder.waitForVolume(id: "bad", statuses: ["available"]) }
                #expect(failed?.description.contains("volume bad went to status 'error'") == true, "\(String(describing: failed))")
                let stuck = await #expect(throws: OpenStackError.self) { try await cinder.waitForVolume(id: "stuck", statuses: ["available"]) }
                #expect(stuck?.description.contains("stayed in status 'creating'") == true)
            }
            #expect(server.requests.filter { $0.path.hasSuffix("/bad") }.count == 1, "an error status ends the wait at once")
        }
    }

    @Test("the default status wait sees a step at most half its time plus 0.5 s late, never more than 4 s, in few polls")
    func statusWaitSchedule() throws {
        let policy = StatusWaitPolicy()
        let polls = policy.pollTimes(within: .seconds(600))
        #expect(polls.prefix(5) == [.zero, .milliseconds(500), .milliseconds(1250), .milliseconds(2375), .microseconds(4_062_500)])
        // A step that ends at t (from 0.1 s to 10 minutes) is seen at the first poll at or after t.
        for tenths in 1...5_950 {
            let ended = Duration.milliseconds(tenths * 100)
            let seen = try #require(polls.first { $0 >= ended }, "no poll after \(ended)")
            #expect(seen <= min(ended * 1.5 + .milliseconds(500), ended + .seconds(4)), "a step ending at \(ended) is seen at \(seen)")
        }
        // A resource stuck for the whole 10 minutes costs its cloud a few GETs a minute, not a flood.
        #expect(polls.count < 160, "\(polls.count) polls in 10 minutes")
        #expect(polls.count > 140, "\(polls.count) polls in 10 minutes: the interval should stop growing at 4 s")
    }
}
