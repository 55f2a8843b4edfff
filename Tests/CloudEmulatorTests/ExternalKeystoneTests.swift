import AsyncHTTPClient
@testable import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

/// The emulator behind the real Keystone of `make test` (`serve --keystone URL`): the seed is enrolled
/// there, its endpoints are registered in a region of its own, tokens are validated as keystonemiddleware
/// does, and the catalog is put back at stop, even after a crash.
@Suite(
    "a real Keystone in front of the emulator",
    .enabled(if: RealKeystoneEnvironment.isRunning, "run through `make test`, which starts a real Keystone"))
struct ExternalKeystoneTests {
    /// Names unique to one test, so tests sharing the Keystone never see each other's projects or regions.
    struct Names {
        let suffix = String(UUID().uuidString.prefix(8)).lowercased()
        var region: String { "EmulatorTest-\(suffix)" }
        var tenant: String { "tenant-\(suffix)" }
        var user: String { "svc-\(suffix)" }
        var userPassword: String { "svc-secret-\(suffix)" }
        var credential: String { "plugin-\(suffix)" }
        var credentialSecret: String { "app-secret-\(suffix)" }
        var adminCredential: String { "admin-cred-\(suffix)" }
        var adminCredentialSecret: String { "admin-app-secret-\(suffix)" }

        /// Admin is the service account (it exists); the tenant, its user and credential are new.
        var seedYAML: String {
            """
            region: \(region)
            projects:
              - name: admin
              - name: \(tenant)
            users:
              - name: admin
                password: not-the-keystone-password
                roles: {admin: [admin], \(tenant): [admin]}
                default_project: admin
                clouds_yaml: true
              - name: \(user)
                password: \(userPassword)
                roles: {\(tenant): [member]}
            application_credentials:
              - {name: \(credential), user: \(user), project: \(tenant), secret: \(credentialSecret)}
              - {name: \(adminCredential), user: admin, project: admin, secret: \(adminCredentialSecret)}
            flavors:
              - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
            networks:
              - {name: private}
            servers:
              - name: backup-proxy
                project: admin
                user: admin
                flavor: m1.small
                proxy: true
                networks: [private]
                volumes:
                  - {name: proxy-root-\(suffix), size: 4}
              - name: web-\(suffix)
                project: \(tenant)
                user: \(user)
                flavor: m1.small
                networks: [private]
                volumes:
                  - {name: web-root-\(suffix), size: 4, content: [{text: "hello\\n", length: 64K}]}
            """
        }
    }

    static var keystone: RealKeystoneEnvironment { RealKeystoneEnvironment.current! }

    static var serviceAccount: CloudConfiguration {
        CloudConfiguration(
            authURL: keystone["KEYSTONE_URL"],
            credentials: .password(
                user: UserReference(name: keystone["KEYSTONE_ADMIN_USER"], domainName: "Default"),
                password: Secret(keystone["KEYSTONE_ADMIN_PASSWORD"]),
                project: ProjectReference(name: keystone["KEYSTONE_ADMIN_PROJECT"], domainName: "Default")))
    }

    /// Runs `body` with an emulator behind the real Keystone, a Keystone admin API for checks, and a log capture.
    func withKeystoneFront<Result: Sendable>(
        _ names: Names, stateDirectory: String, tokenCacheLifetime: TimeInterval = 0,
        _ body: (TestCloud, KeystoneAdminAPI, CapturingLogHandler) async throws -> Result
    ) async throws -> Result {
        let capture = CapturingLogHandler()
        var logger = Logger(label: "osbackup.emulator.test") { _ in capture }
        logger.logLevel = .debug
        let configuration = EmulatorConfiguration(
            stateDirectory: stateDirectory, transitionDelay: 0.05, sizeUnit: .mebibyte,
            externalKeystone: ExternalKeystone(service: Self.serviceAccount, tokenCacheLifetime: tokenCacheLifetime))
        let seed = try EmulatorSeed.parse(yaml: names.seedYAML)
        return try await OpenStackTransport.withTransport { transport in
            let admin = KeystoneAdminAPI(session: KeystoneSession(configuration: Self.serviceAccount, transport: transport, logger: testLogger))
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                let result = try await withRunningEmulator(configuration: configuration, seed: seed, logger: logger) { running in
                    try await body(TestCloud(running: running, http: http), admin, capture)
                }
                try await http.shutdown()
                return result
            } catch {
                try? await http.shutdown()
                throw error
            }
        }
    }

    /// A token from the real Keystone for an application credential of the seed (by name and user).
    func credentialToken(_ cloud: TestCloud, name: String, user: String, secret: String) async throws -> String {
        let body = """
            {"auth":{"identity":{"methods":["application_credential"],"application_credential":{"name":"\(name)",
             "user":{"name":"\(user)","domain":{"id":"default"}},"secret":"\(secret)"}}}}
            """
        let response = try await cloud.send("POST", Self.keystone["KEYSTONE_URL"] + "/auth/tokens", json: body)
        guard response.status == 201, let token = response.header("X-Subject-Token") else {
            throw TestFailure("application credential token: HTTP \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return token
    }

    @Test("enrols the seed, serves Nova and Cinder by the real token's project and roles, puts the catalog back")
    func realKeystoneInFront() async throws {
        let names = Names()
        try await withTemporaryDirectory { directory in
            let (tenantID, baseURL) = try await withKeystoneFront(names, stateDirectory: directory) { cloud, admin, capture in
                #expect(cloud.running.authURL == Self.keystone["KEYSTONE_URL"])
                #expect(cloud.running.region == names.region)
                let tenantID = try #require(try await admin.projectID(named: names.tenant))
                let adminProjectID = try #require(try await admin.projectID(named: "admin"))

                // Catalog: the emulator's three services in its region, Cinder's URL with Keystone's template.
                let computeID = try #require(try await admin.firstID("services", filters: [("type", "compute")]))
                let endpoints = try await admin.endpoints(serviceID: computeID, region: names.region)
                #expect(Set(endpoints.map(\.interface)) == ["public", "internal", "admin"])
                #expect(endpoints.allSatisfy { $0.url == cloud.running.computeURL })

                // The application credential's token (a project member) sees its project only.
                let member = try await credentialToken(cloud, name: names.credential, user: names.user, secret: names.credentialSecret)
                // The service account's own credential of the seed was made with the account's real password.
                _ = try await credentialToken(cloud, name: names.adminCredential, user: "admin", secret: names.adminCredentialSecret)
                let servers = try await cloud.send("GET", "/compute/v2.1/servers/detail", token: member)
                #expect(servers.status == 200)
                let listed = servers.json?["servers"]?.array ?? []
                #expect(listed.compactMap { $0["name"]?.string } == ["web-\(names.suffix)"])
                #expect(listed.first?["tenant_id"]?.string == tenantID)
                let allTenants = try await cloud.send("GET", "/compute/v2.1/servers/detail?all_tenants=1", token: member)
                #expect(allTenants.status == 403)
                let volumes = try await cloud.send("GET", "/volume/v3/\(tenantID)/volumes", token: member)
                #expect(volumes.json?["volumes"]?.array?.compactMap { $0["name"]?.string } == ["web-root-\(names.suffix)"])
                let otherProject = try await cloud.send("GET", "/volume/v3/\(adminProjectID)/volumes", token: member)
                #expect(otherProject.status == 400)  // Cinder's "Malformed request url": the path's project is not the token's

                // The admin role (service account token) sees every project with all_tenants.
                let adminToken = try await admin.session.token().value.reveal()
                let everything = try await cloud.send("GET", "/compute/v2.1/servers/detail?all_tenants=1", token: adminToken)
                let everyName = Set(everything.json?["servers"]?.array?.compactMap { $0["name"]?.string } ?? [])
                #expect(everyName == ["backup-proxy", "web-\(names.suffix)"])

                // A token revoked in Keystone is refused at once (no cache), as keystonemiddleware answers.
                let revoke = try await cloud.send(
                    "DELETE", Self.keystone["KEYSTONE_URL"] + "/auth/tokens", token: adminToken, headers: [("X-Subject-Token", member)])
                #expect(revoke.status == 204)
                let refused = try await cloud.send("GET", "/compute/v2.1/servers/detail", token: member)
                #expect(refused.status == 401)
                let keystoneBase = String(Self.keystone["KEYSTONE_URL"].dropLast(3))
                #expect(refused.header("WWW-Authenticate") == "Keystone uri=\"\(keystoneBase)\"")
                #expect(try await cloud.send("GET", "/compute/v2.1/servers/detail", token: "not-a-token").status == 401)
                #expect(try await cloud.send("GET", "/compute/v2.1/servers/detail").status == 401)
                // The emulator's own Keystone is off.
                #expect(try await cloud.send("POST", "/v3/auth/tokens", json: "{}").status == 404)

                // No secret reaches the log, not even at debug.
                let log = capture.text
                for secret in [
                    Self.keystone["KEYSTONE_ADMIN_PASSWORD"], names.userPassword, names.credentialSecret, names.adminCredentialSecret, member,
                    adminToken,
                ] {
                    #expect(!log.contains(secret), "a secret reached the log")
                }
                return (tenantID, cloud.running.baseURL)
            }
            // Stopped: the region the emulator created and every endpoint of it are gone; the journal too.
            try await OpenStackTransport.withTransport { transport in
                let admin = KeystoneAdminAPI(session: KeystoneSession(configuration: Self.serviceAccount, transport: transport, logger: testLogger))
                #expect(try await admin.region(names.region) == nil)
                let leftovers = try await admin.list("endpoints").filter { $0["url"]?.string?.hasPrefix(baseURL) == true }
                #expect(leftovers.isEmpty, "endpoints left in Keystone: \(leftovers)")
                // The seed's identity stays (it is not debris): a second start reuses it.
                #expect(try await admin.projectID(named: names.tenant) == tenantID)
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/" + CatalogRegistration.journalName))
            // The state now holds Keystone's ids, so data stays scoped after a restart.
            let inventory = try EmulatorInventory.load(stateDirectory: directory, deviceDirectory: nil)
            #expect(inventory.volumes.contains { $0.name == "web-root-\(names.suffix)" })
            let records = try #require(try StateFile.read(stateDirectory: directory))
            #expect(records.volumes.first { $0.name == "web-root-\(names.suffix)" }?.projectID == tenantID)
        }
    }

    @Test("openstacksdk drives the emulator through the real Keystone (clouds.yaml written by the emulator)")
    func openStackSDKThroughRealKeystone() async throws {
        let names = Names()
        try await withTemporaryDirectory { directory in
            try await withKeystoneFront(names, stateDirectory: directory, tokenCacheLifetime: 30) { cloud, _, _ in
                let clouds = directory + "/clouds.yaml"
                let yaml = try cloud.running.cloudsYAML()
                #expect(yaml.contains("auth_url: '\(Self.keystone["KEYSTONE_URL"])'"))
                #expect(yaml.contains("region_name: '\(names.region)'"))
                try yaml.write(toFile: clouds, atomically: true, encoding: .utf8)
                try await OpenStackSDKTests.check(cloud.running, cloudsYAML: clouds)
            }
        }
    }

    @Test("a start after a crash first undoes what the crashed run left in the catalog; stop restores what was there")
    func crashLeftovers() async throws {
        let names = Names()
        try await withTemporaryDirectory { directory in
            try await OpenStackTransport.withTransport { transport in
                let admin = KeystoneAdminAPI(session: KeystoneSession(configuration: Self.serviceAccount, transport: transport, logger: testLogger))
                // An operator's region with a compute endpoint of its own.
                _ = try await admin.create("regions", member: "region", fields: [("id", .string(names.region))])
                let computeID = try #require(try await admin.firstID("services", filters: [("type", "compute")]))
                let operatorURL = "http://compute.example.invalid:8774/v2.1"
                let operatorEndpoint = try await admin.create(
                    "endpoints", member: "endpoint",
                    fields: [
                        ("service_id", .string(computeID)), ("interface", .string("public")), ("url", .string(operatorURL)),
                        ("region_id", .string(names.region)),
                    ])
                // A run that crashed after registering: its journal and endpoints stay behind.
                let crashed = CatalogRegistration(api: admin, stateDirectory: directory, logger: testLogger)
                try await crashed.register(baseURL: "http://127.0.0.1:9", region: names.region)
                // ... and died between Keystone's answer to its last endpoint creation and the journal update.
                let journalPath = directory + "/" + CatalogRegistration.journalName
                var journal = try JSONDecoder().decode(CatalogRegistration.Journal.self, from: Data(contentsOf: URL(fileURLWithPath: journalPath)))
                let lost = try #require(journal.endpoints.last)
                #expect(lost.originalURL == nil && lost.id != nil)
                journal.endpoints[journal.endpoints.count - 1].id = nil
                try JSONEncoder().encode(journal).write(to: URL(fileURLWithPath: journalPath))

                try await withKeystoneFront(names, stateDirectory: directory) { cloud, _, _ in
                    let endpoints = try await admin.endpoints(serviceID: computeID, region: names.region)
                    #expect(endpoints.count == 3, "\(endpoints)")
                    #expect(endpoints.allSatisfy { $0.url == cloud.running.computeURL })
                }
                let after = try await admin.endpoints(serviceID: computeID, region: names.region)
                #expect(after == [.init(id: operatorEndpoint, interface: "public", url: operatorURL)])
                #expect(try await admin.region(names.region) != nil)
                let volumeID = try #require(try await admin.firstID("services", filters: [("type", "volumev3")]))
                #expect(try await admin.endpoints(serviceID: volumeID, region: names.region).isEmpty)
                let blockStorageID = try #require(try await admin.firstID("services", filters: [("type", "block-storage")]))
                #expect(try await admin.endpoints(serviceID: blockStorageID, region: names.region).isEmpty, "the endpoint whose id was lost")
                try await admin.delete("endpoints", id: operatorEndpoint)
                try await admin.delete("regions", id: names.region)
            }
        }
    }

    @Test("an unreachable Keystone makes token validation unavailable (503), never accepted")
    func unreachableKeystone() async throws {
        var service = Self.serviceAccount
        service.authURL = "http://127.0.0.1:9/v3"
        try await OpenStackTransport.withTransport(retryPolicy: RetryPolicy(maximumAttempts: 1)) { transport in
            let session = KeystoneSession(configuration: service, transport: transport, logger: testLogger)
            let validator = ExternalTokenValidator(session: session, cacheLifetime: 30, logger: testLogger)
            guard case .unavailable = await validator.authenticate("some-token") else {
                Issue.record("a token was not reported unavailable with Keystone down")
                return
            }
            guard case .refused = await validator.authenticate(nil) else {
                Issue.record("a missing token was not refused")
                return
            }
        }
    }
}
