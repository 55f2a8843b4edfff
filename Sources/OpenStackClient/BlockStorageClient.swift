import Foundation

/// Typed Cinder v3 calls: volumes, snapshots, metadata, status waits; microversion negotiated at connect.
public struct BlockStorageClient: Sendable {
    /// The newest microversion this client knows (Zed's maximum).
    public static let maximumMicroversion = Microversion(3, 70)
    /// The microversion from which in-use snapshots need no `force` flag (and `force: false` is refused).
    public static let snapshotWithoutForce = Microversion(3, 66)

    private let client: ServiceClient
    /// The microversion in use.
    public var microversion: Microversion { client.microversion }
    /// The range the service announced.
    public let serviceRange: APIVersionRange
    /// How status waits poll.
    public var waitPolicy: StatusWaitPolicy

    /// Discovers Cinder's versions at its endpoint and negotiates the microversion.
    public static func connect(
        session: KeystoneSession, maximum: Microversion = maximumMicroversion, waitPolicy: StatusWaitPolicy = .init()
    ) async throws(OpenStackError) -> BlockStorageClient {
        let endpoint = try await session.endpoint(for: "block-storage")
        let versionURL = Self.versionURL(endpoint: endpoint)
        let range = try await ServiceClient.discover(
            session: session, serviceType: "block-storage", versionURL: versionURL, idPrefix: "v3")
        guard let chosen = range.negotiate(clientMinimum: Microversion(3, 0), clientMaximum: maximum) else {
            throw .invalidResponse(
                service: "block-storage", operation: "version negotiation", status: nil, requestID: nil,
                "Cinder serves \(range.minimum)...\(range.maximum), osbackup needs 3.0...\(maximum)")
        }
        return BlockStorageClient(
            client: ServiceClient(session: session, serviceType: "block-storage", microversionService: "volume", microversion: chosen),
            serviceRange: range, waitPolicy: waitPolicy)
    }

    /// The version document's URL for an endpoint like `https://h:8776/v3/<project>`: `https://h:8776/v3/`.
    static func versionURL(endpoint: String) -> String {
        if let range = endpoint.range(of: "/v3", options: .backwards) {
            return String(endpoint[..<range.upperBound]) + "/"
        }
        return endpoint + "/"
    }

    // MARK: Volumes

    /// Every volume matching `filter`, all pages.
    public func volumes(_ filter: VolumeFilter = .init()) async throws(OpenStackError) -> [Volume] {
        var query: [(String, String?)] = [
            ("name", filter.name), ("status", filter.status), ("limit", filter.pageSize.map(String.init)),
        ]
        if !filter.metadata.isEmpty {
            let data = (try? JSONSerialization.data(withJSONObject: filter.metadata, options: .sortedKeys)) ?? Data()
            query.append(("metadata", String(decoding: data, as: UTF8.self)))
        }
        if filter.allProjects { query.append(("all_tenants", "1")) }
        query.append(("project_id", filter.projectID))
        return try await client.collect(Volume.self, key: "volumes", path: "/volumes/detail" + ServiceClient.query(query))
    }

    /// One volume.
    public func volume(id: String) async throws(OpenStackError) -> Volume {
        let response = try await client.call("GET", "/volumes/\(id)", expect: [200])
        return try client.decode(Volume.self, key: "volume", from: response, operation: "GET /volumes/\(id)")
    }

    /// Creates a volume (empty, or from a snapshot); returns it in its first status (`creating`).
    ///
    /// The request carries a unique tag in its metadata; after an ambiguous failure the volume is looked
    /// up by that tag before the create is tried again, so a retry never makes a second volume.
    public func createVolume(_ request: VolumeCreateRequest) async throws(OpenStackError) -> Volume {
        var request = request
        let tag = request.metadata[IdempotentCreate.tagKey] ?? UUID().uuidString.lowercased()
        request.metadata[IdempotentCreate.tagKey] = tag
        return try await IdempotentCreate.run {
            () async throws(OpenStackError) -> Volume in
            let response = try await client.call("POST", "/volumes", body: request.body, expect: [202, 200])
            return try client.decode(Volume.self, key: "volume", from: response, operation: "POST /volumes")
        } lookup: { () async throws(OpenStackError) -> Volume? in
            try await volumes(VolumeFilter(metadata: [IdempotentCreate.tagKey: tag])).first
        }
    }

    /// Deletes a volume (202; the deletion finishes asynchronously).
    public func deleteVolume(id: String) async throws(OpenStackError) {
        _ = try await client.call("DELETE", "/volumes/\(id)", expect: [202, 204])
    }

    /// Sets metadata keys on a volume (others are kept).
    public func setVolumeMetadata(id: String, _ metadata: [String: String]) async throws(OpenStackError) {
        _ = try await client.call("POST", "/volumes/\(id)/metadata", body: ["metadata": metadata], expect: [200], isIdempotent: true)
    }

    /// Replaces all the metadata of a volume (keys not given are removed).
    public func replaceVolumeMetadata(id: String, _ metadata: [String: String]) async throws(OpenStackError) {
        _ = try await client.call("PUT", "/volumes/\(id)/metadata", body: ["metadata": metadata], expect: [200], isIdempotent: true)
    }

    /// Marks a volume bootable or not (`os-set_bootable`).
    public func setBootable(id: String, _ bootable: Bool) async throws(OpenStackError) {
        _ = try await client.call(
            "POST", "/volumes/\(id)/action", body: ["os-set_bootable": ["bootable": bootable]], expect: [200, 202], isIdempotent: true)
    }

    /// Waits for a volume to reach one of `statuses`; fails at once on an error status.
    public func waitForVolume(id: String, statuses: Set<String>) async throws(OpenStackError) -> Volume {
        let volume = try await StatusWaiter.wait(
            for: "volume \(id)", service: "block-storage", wanted: statuses,
            failing: ["error", "error_deleting", "error_restoring", "error_extending", "error_managing"], policy: waitPolicy
        ) { () async throws(OpenStackError) -> (Volume, String)? in
            let volume = try await optionalResource { () async throws(OpenStackError) in try await self.volume(id: id) }
            return volume.map { ($0, $0.status) }
        }
        return volume!
    }

    /// Waits for a volume to be gone.
    public func waitForVolumeDeleted(id: String) async throws(OpenStackError) {
        _ = try await StatusWaiter.wait(
            for: "volume \(id)", service: "block-storage", wanted: [], failing: ["error_deleting"], wantsGone: true,
            policy: waitPolicy
        ) { () async throws(OpenStackError) -> (Volume, String)? in
            let volume = try await optionalResource { () async throws(OpenStackError) in try await self.volume(id: id) }
            return volume.map { ($0, $0.status) }
        }
    }

    // MARK: Snapshots

    /// Snapshots a volume; `force` is sent (true) only below 3.66, where an in-use volume needs it.
    public func createSnapshot(
        volumeID: String, name: String, description: String? = nil, metadata: [String: String] = [:]
    ) async throws(OpenStackError) -> Snapshot {
        var metadata = metadata
        let tag = metadata[IdempotentCreate.tagKey] ?? UUID().uuidString.lowercased()
        metadata[IdempotentCreate.tagKey] = tag
        var snapshot: [String: Any] = ["volume_id": volumeID, "name": name, "metadata": metadata]
        if let description { snapshot["description"] = description }
        if microversion < Self.snapshotWithoutForce { snapshot["force"] = true }
        let body = ["snapshot": snapshot]
        return try await IdempotentCreate.run {
            () async throws(OpenStackError) -> Snapshot in
            let response = try await client.call("POST", "/snapshots", body: body, expect: [202, 200])
            return try client.decode(Snapshot.self, key: "snapshot", from: response, operation: "POST /snapshots")
        } lookup: { () async throws(OpenStackError) -> Snapshot? in
            try await snapshots(volumeID: volumeID, metadata: [IdempotentCreate.tagKey: tag]).first
        }
    }

    /// One snapshot.
    public func snapshot(id: String) async throws(OpenStackError) -> Snapshot {
        let response = try await client.call("GET", "/snapshots/\(id)", expect: [200])
        return try client.decode(Snapshot.self, key: "snapshot", from: response, operation: "GET /snapshots/\(id)")
    }

    /// Every snapshot, optionally of one volume or with given metadata.
    public func snapshots(volumeID: String? = nil, metadata: [String: String] = [:], allProjects: Bool = false) async throws(OpenStackError) -> [Snapshot] {
        var query: [(String, String?)] = [("volume_id", volumeID)]
        if !metadata.isEmpty {
            let data = (try? JSONSerialization.data(withJSONObject: metadata, options: .sortedKeys)) ?? Data()
            query.append(("metadata", String(decoding: data, as: UTF8.self)))
        }
        if allProjects { query.append(("all_tenants", "1")) }
        return try await client.collect(Snapshot.self, key: "snapshots", path: "/snapshots/detail" + ServiceClient.query(query))
    }

    /// Deletes a snapshot (202; finishes asynchronously).
    public func deleteSnapshot(id: String) async throws(OpenStackError) {
        _ = try await client.call("DELETE", "/snapshots/\(id)", expect: [202, 204])
    }

    /// Waits for a snapshot to reach one of `statuses`; fails at once on `error`.
    public func waitForSnapshot(id: String, statuses: Set<String>) async throws(OpenStackError) -> Snapshot {
        let snapshot = try await StatusWaiter.wait(
            for: "snapshot \(id)", service: "block-storage", wanted: statuses, failing: ["error", "error_deleting"],
            policy: waitPolicy
        ) { () async throws(OpenStackError) -> (Snapshot, String)? in
            let snapshot = try await optionalResource { () async throws(OpenStackError) in try await self.snapshot(id: id) }
            return snapshot.map { ($0, $0.status) }
        }
        return snapshot!
    }

    /// Waits for a snapshot to be gone.
    public func waitForSnapshotDeleted(id: String) async throws(OpenStackError) {
        _ = try await StatusWaiter.wait(
            for: "snapshot \(id)", service: "block-storage", wanted: [], failing: ["error_deleting"], wantsGone: true,
            policy: waitPolicy
        ) { () async throws(OpenStackError) -> (Snapshot, String)? in
            let snapshot = try await optionalResource { () async throws(OpenStackError) in try await self.snapshot(id: id) }
            return snapshot.map { ($0, $0.status) }
        }
    }
}

/// The value, or nil when the service answered 404 (the resource does not exist, or no longer).
public func optionalResource<Value>(_ body: () async throws(OpenStackError) -> Value) async throws(OpenStackError) -> Value? {
    do {
        return try await body()
    } catch where error.status == 404 {
        return nil
    }
}
