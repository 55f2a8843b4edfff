import Foundation
import Testing
@testable import OpenStackClient

/// The client against the answers of a real Keystone (Zed) and cinder-api, recorded in `Recorded/`.
@Suite("Contract: recorded real responses")
struct KeystoneContractTests {
    static let tokenResponses = RecordedExchange.all(in: "real-keystone").filter {
        $0.headers["x-subject-token"] != nil && ($0.status == 200 || $0.status == 201) && !$0.body.isEmpty
    }

    static let errorResponses = (RecordedExchange.all(in: "real-keystone") + RecordedExchange.all(in: "real-cinder-api"))
        .filter { $0.status >= 400 && !$0.body.isEmpty }

    @Test("the recordings are there")
    func recordingsPresent() {
        #expect(Self.tokenResponses.count >= 10)
        #expect(Self.errorResponses.count >= 20)
    }

    @Test("every recorded token decodes", arguments: tokenResponses)
    func tokensDecode(exchange: RecordedExchange) throws {
        let token = try KeystoneSession.decodeToken(exchange.response, operation: "POST /v3/auth/tokens")
        #expect(token.value.reveal() == exchange.headers["x-subject-token"])
        #expect(token.expiresAt > Date(timeIntervalSince1970: 1_700_000_000))
        if let issuedAt = token.issuedAt { #expect(issuedAt < token.expiresAt) }
        #expect(!token.userID.isEmpty)
        if token.projectID != nil, !exchange.name.contains("nocatalog") {
            #expect(!token.catalog.services.isEmpty, "a project-scoped token carries a catalog")
        }
    }

    @Test("Keystone's microsecond timestamps parse exactly")
    func timestamps() {
        let date = KeystoneTimestamp.parse("2026-11-22T02:34:49.250000Z")
        #expect(date?.timeIntervalSince1970 == 1_795_314_889.25)
    }

    @Test("every recorded error body gives its message", arguments: errorResponses)
    func errorsDecode(exchange: RecordedExchange) throws {
        let error = OpenStackError.http(
            service: "test", operation: "GET /x", status: exchange.status, requestID: exchange.response.requestID,
            body: exchange.body)
        let message = try #require(ErrorBody.message(from: exchange.body))
        #expect(!message.hasPrefix("{"), "the message is extracted, not the raw JSON")
        #expect(error.description.contains(message))
        #expect(!error.description.contains("\n"))
        if let requestID = exchange.response.requestID { #expect(error.description.contains(requestID)) }
    }

    @Test("Cinder's 413 over-limit answer is a final quota error")
    func quota() throws {
        let exchange = try #require(Self.errorResponses.first { $0.status == 413 })
        let error = OpenStackError.http(
            service: "block-storage", operation: "POST /volumes", status: 413, requestID: nil, body: exchange.body)
        #expect(error.isQuotaExceeded)
        #expect(error.description.contains("retrying will not help"))
    }

    @Test("the catalog picks endpoints by type, alias, interface and region")
    func catalogChoice() throws {
        let exchange = try #require(RecordedExchange.named("36-auth-catalog", in: "real-keystone"))
        struct Body: Decodable { var catalog: ServiceCatalog }
        let catalog = try exchange.response.decode(Body.self).catalog
        #expect(catalog.endpointURL(serviceType: "compute", interfaces: [.public], region: "RegionOne") == "http://127.0.0.1:28774/v2.1")
        #expect(catalog.endpointURL(serviceType: "compute", interfaces: [.public], region: "RegionTwo") == "http://127.0.0.2:28774/v2.1")
        #expect(catalog.endpointURL(serviceType: "compute", interfaces: [.internal], region: "RegionTwo") == nil)
        #expect(catalog.endpointURL(serviceType: "compute", interfaces: [.internal, .public], region: "RegionTwo") != nil)
        for alias in ["volumev3", "block-storage", "volume"] {
            #expect(
                catalog.endpointURL(serviceType: alias, interfaces: [.public], region: nil)
                    == "http://127.0.0.1:28776/v3/601b2a5281a34f0597fbf759c9287335")
        }
        #expect(catalog.regions(serviceType: "compute") == ["RegionOne", "RegionTwo"])
    }

    @Test("only volumev3 registered, or only a v2 endpoint")
    func catalogAliases() {
        func catalog(_ services: [(String, String)]) -> ServiceCatalog {
            ServiceCatalog(services: services.map { type, url in
                ServiceCatalog.Service(
                    type: type, name: nil, id: nil,
                    endpoints: [ServiceCatalog.Endpoint(id: nil, interface: "public", regionID: "R", region: "R", url: url)])
            })
        }
        #expect(catalog([("volumev3", "http://c/v3/p")]).endpointURL(serviceType: "block-storage", interfaces: [.public], region: nil) == "http://c/v3/p")
        #expect(catalog([("volumev2", "http://c/v2/p")]).endpointURL(serviceType: "block-storage", interfaces: [.public], region: nil) == nil)
        #expect(catalog([("volume", "http://c/v3/p"), ("block-storage", "http://d/v3/p")])
            .endpointURL(serviceType: "volumev3", interfaces: [.public], region: nil) == "http://d/v3/p")
        #expect(EndpointInterface(name: "internalURL") == .internal)
    }

    @Test("authentication bodies have the shapes Keystone accepts")
    func authBodies() throws {
        func json(_ credentials: Credentials) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: AuthRequestBody.make(for: credentials), options: .sortedKeys), as: UTF8.self)
        }
        #expect(
            try json(.password(user: UserReference(name: "u", domainName: "D"), password: Secret("p"), project: ProjectReference(name: "pr", domainID: "default")))
                == #"{"auth":{"identity":{"methods":["password"],"password":{"user":{"domain":{"name":"D"},"name":"u","password":"p"}}},"scope":{"project":{"domain":{"id":"default"},"name":"pr"}}}}"#)
        #expect(
            try json(.applicationCredential(.id("ac"), secret: Secret("s")))
                == #"{"auth":{"identity":{"application_credential":{"id":"ac","secret":"s"},"methods":["application_credential"]}}}"#)
        #expect(
            try json(.applicationCredential(.name("n", user: UserReference(id: "uid")), secret: Secret("s")))
                == #"{"auth":{"identity":{"application_credential":{"name":"n","secret":"s","user":{"id":"uid"}},"methods":["application_credential"]}}}"#)
    }

    @Test("secrets print as <redacted>")
    func secretRedaction() {
        let secret = Secret("hunter2")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        let credentials = Credentials.password(user: UserReference(name: "u"), password: secret, project: nil)
        #expect(!"\(credentials)".contains("hunter2"))
    }

    @Test("proxy settings honour no_proxy")
    func proxies() {
        let settings = ProxySettings(environment: [
            "https_proxy": "http://proxy.example:3128", "NO_PROXY": "localhost,.internal.example,10.0.0.1",
        ])
        #expect(settings.server(for: URL(string: "https://keystone.example/v3")!)?.host == "proxy.example")
        #expect(settings.server(for: URL(string: "https://api.internal.example/v3")!) == nil)
        #expect(settings.server(for: URL(string: "https://localhost:5000")!) == nil)
        #expect(settings.server(for: URL(string: "http://keystone.example/v3")!) == nil, "no http_proxy set")
    }

    @Test("retry delays grow, stay capped and are jittered")
    func retryDelays() {
        let policy = RetryPolicy(maximumAttempts: 10, initialDelay: .milliseconds(100), maximumDelay: .seconds(2))
        #expect(policy.delay(afterAttempt: 1) <= .milliseconds(100))
        #expect(policy.delay(afterAttempt: 1) >= .milliseconds(50))
        #expect(policy.delay(afterAttempt: 20) <= .seconds(2))
        #expect(policy.delay(afterAttempt: 20) >= .seconds(1))
    }
}
