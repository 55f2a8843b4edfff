import Foundation

/// Typed Nova v2.1 calls: servers, flavors, volume attachments, server create; microversion negotiated
/// at connect.
public struct ComputeClient: Sendable {
    /// The newest microversion this client knows.
    public static let maximumMicroversion = Microversion(2, 100)
    /// The microversion from which attaching answers 202 with no body.
    public static let attachWithoutBody = Microversion(2, 101)

    private let client: ServiceClient
    /// The microversion in use.
    public var microversion: Microversion { client.microversion }
    /// The range the service announced.
    public let serviceRange: APIVersionRange

    /// Discovers Nova's versions at its endpoint and negotiates the microversion.
    public static func connect(
        session: KeystoneSession, maximum: Microversion = maximumMicroversion
    ) async throws(OpenStackError) -> ComputeClient {
        let endpoint = try await session.endpoint(for: "compute")
        let range = try await ServiceClient.discover(
            session: session, serviceType: "compute", versionURL: versionURL(endpoint: endpoint), idPrefix: "v2.1")
        guard let chosen = range.negotiate(clientMinimum: Microversion(2, 1), clientMaximum: maximum) else {
            throw .invalidResponse(
                service: "compute", operation: "version negotiation", status: nil, requestID: nil,
                "Nova serves \(range.minimum)...\(range.maximum), osbackup needs 2.1...\(maximum)")
        }
        return ComputeClient(
            client: ServiceClient(session: session, serviceType: "compute", microversionService: "compute", microversion: chosen),
            serviceRange: range)
    }

    /// The version document's URL: the endpoint up to `/v2.1` (older catalogs append the project id).
    static func versionURL(endpoint: String) -> String {
        if let range = endpoint.range(of: "/v2.1", options: .backwards) { return String(endpoint[..<range.upperBound]) }
        return endpoint
    }

    // MARK: Servers

    /// Every server matching `filter`, all pages.
    public func servers(_ filter: ServerFilter = .init()) async throws(OpenStackError) -> [Server] {
        var query: [(String, String?)] = [
            ("name", filter.nameRegex), ("status", filter.status), ("limit", filter.pageSize.map(String.init)),
        ]
        if filter.allProjects {
            query.append(("all_tenants", "1"))
            query.append(("project_id", filter.projectID))
        }
        return try await client.collect(Server.self, key: "servers", path: "/servers/detail" + ServiceClient.query(query))
    }

    /// One server.
    public func server(id: String) async throws(OpenStackError) -> Server {
        let response = try await client.call("GET", "/servers/\(id)", expect: [200])
        return try client.decode(Server.self, key: "server", from: response, operation: "GET /servers/\(id)")
    }

    /// One flavor (a server's embedded flavor, 2.47+, survives the flavor's deletion; this does not).
    public func flavor(id: String) async throws(OpenStackError) -> Flavor {
        let response = try await client.call("GET", "/flavors/\(id)", expect: [200])
        return try client.decode(Flavor.self, key: "flavor", from: response, operation: "GET /flavors/\(id)")
    }

    /// Every flavor the caller may use, with details.
    public func flavors() async throws(OpenStackError) -> [Flavor] {
        try await client.collect(Flavor.self, key: "flavors", path: "/flavors/detail")
    }

    /// The network interfaces (ports) of a server (`os-interface`): networks, MACs and fixed IPs by id,
    /// which `addresses` (keyed by network name) does not give.
    public func interfaces(serverID: String) async throws(OpenStackError) -> [ServerInterface] {
        let path = "/servers/\(serverID)/os-interface"
        let response = try await client.call("GET", path, expect: [200])
        return try client.decode([ServerInterface].self, key: "interfaceAttachments", from: response, operation: "GET \(path)")
    }

    /// Waits for a server to reach one of `statuses`; fails at once on `ERROR`.
    public func waitForServer(id: String, statuses: Set<String>, policy: StatusWaitPolicy = .init()) async throws(OpenStackError) -> Server {
        let server = try await StatusWaiter.wait(
            for: "server \(id)", service: "compute", wanted: statuses, failing: ["ERROR"], policy: policy
        ) { () async throws(OpenStackError) -> (Server, String)? in
            let server = try await optionalResource { () async throws(OpenStackError) in try await self.server(id: id) }
            return server.map { ($0, $0.status) }
        }
        return server!
    }

    /// Replaces all the metadata of a server (keys not given are removed).
    public func replaceServerMetadata(id: String, _ metadata: [String: String]) async throws(OpenStackError) {
        _ = try await client.call("PUT", "/servers/\(id)/metadata", body: ["metadata": metadata], expect: [200], isIdempotent: true)
    }

    /// Deletes a server and waits until it is gone (its volumes are released).
    public func deleteServer(id: String, policy: StatusWaitPolicy = .init()) async throws(OpenStackError) {
        guard try await optionalResource({ () async throws(OpenStackError) in
            try await client.call("DELETE", "/servers/\(id)", expect: [202, 204])
        }) != nil else { return }
        _ = try await StatusWaiter.wait(
            for: "server \(id)", service: "compute", wanted: [], failing: [], wantsGone: true, policy: policy
        ) { () async throws(OpenStackError) -> (Server, String)? in
            let server = try await optionalResource { () async throws(OpenStackError) in try await self.server(id: id) }
            return server.map { ($0, $0.status) }
        }
    }

    /// Boots a server from volumes (a restore); returns its id. The server then goes `BUILD` → `ACTIVE`.
    public func createServer(_ request: ServerCreateRequest) async throws(OpenStackError) -> String {
        let response = try await client.call("POST", "/servers", body: request.body, expect: [202])
        struct Created: Decodable { var id: String }
        return try client.decode(Created.self, key: "server", from: response, operation: "POST /servers").id
    }

    // MARK: Volume attachments

    /// The volumes attached to a server.
    public func volumeAttachments(serverID: String) async throws(OpenStackError) -> [VolumeAttachment] {
        let path = "/servers/\(serverID)/os-volume_attachments"
        let response = try await client.call("GET", path, expect: [200])
        return try client.decode([VolumeAttachment].self, key: "volumeAttachments", from: response, operation: "GET \(path)")
    }

    /// Attaches a volume to a server. Before 2.101 Nova answers 200 with the attachment, from 2.101 202 with
    /// no body (then nil). Either way the attach finishes asynchronously: wait for the Cinder volume's
    /// `in-use`, and find the device by its serial, never by the returned `device`.
    public func attachVolume(serverID: String, volumeID: String) async throws(OpenStackError) -> VolumeAttachment? {
        let path = "/servers/\(serverID)/os-volume_attachments"
        let response = try await client.call(
            "POST", path, body: ["volumeAttachment": ["volumeId": volumeID]], expect: [200, 202])
        guard response.status == 200, !response.body.isEmpty else { return nil }
        return try client.decode(VolumeAttachment.self, key: "volumeAttachment", from: response, operation: "POST \(path)")
    }

    /// Detaches a volume from a server (202; finishes asynchronously: wait for the volume's `available`).
    public func detachVolume(serverID: String, volumeID: String) async throws(OpenStackError) {
        _ = try await client.call("DELETE", "/servers/\(serverID)/os-volume_attachments/\(volumeID)", expect: [202])
    }
}
