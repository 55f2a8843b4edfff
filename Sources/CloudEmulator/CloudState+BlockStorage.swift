import Foundation
import Logging

/// Cinder v3 under `/volume`: the version documents, then `/volume/v3/<project id>/...`.
extension CloudState {
    func blockStorage(_ request: EmulatorRequest, rest: [String]) throws -> EmulatorResponse {
        let policy = MicroversionPolicy.volume
        if rest.isEmpty {
            return EmulatorResponse(status: 300, json: .object([("versions", .array([cinderVersion()]))]))
        }
        guard rest[0] == "v3" else { return ServiceFault.response(404, "The resource could not be found.") }
        if rest.count <= 2 && request.method == "GET" {
            return EmulatorResponse(status: 200, json: .object([("versions", .array([cinderVersion()]))]))
        }
        let caller = try caller(request)
        let version = try policy.negotiate(request)
        let echo = policy.headers(for: version)
        guard rest[1] == caller.projectID else {
            return ServiceFault.response(400, "Malformed request url").adding(echo)
        }
        let context = BlockStorageCall(request: request, caller: caller, version: version, path: Array(rest.dropFirst(2)))
        do {
            return try blockStorageRoute(context).adding(echo).adding([("X-Compute-Request-Id", request.requestID)])
        } catch let rejection as ServiceRejection {
            return rejection.response.adding(echo)
        }
    }

    private func cinderVersion() -> JSON {
        .object([
            ("id", .string("v3.0")), ("status", .string("CURRENT")),
            ("version", .string(MicroversionPolicy.volume.maximum.description)),
            ("min_version", .string(MicroversionPolicy.volume.minimum.description)),
            ("updated", .string("2023-08-31T00:00:00Z")),
            (
                "links",
                .array([
                    .object([("rel", .string("describedby")), ("type", .string("text/html")), ("href", .string("https://docs.openstack.org/"))]),
                    .object([("rel", .string("self")), ("href", .string(baseURL + "/volume/v3/"))]),
                ])
            ),
            (
                "media-types",
                .array([.object([("base", .string("application/json")), ("type", .string("application/vnd.openstack.volume+json;version=3"))])])
            ),
        ])
    }

    private func blockStorageRoute(_ call: BlockStorageCall) throws -> EmulatorResponse {
        let match = RouteMatcher(method: call.request.method, path: call.path)
        if match("GET", "volumes") != nil {
            return try listVolumes(call, detail: false)
        }
        if match("GET", "volumes/detail") != nil {
            return try listVolumes(call, detail: true)
        }
        if match("POST", "volumes") != nil {
            return try createVolume(call)
        }
        if let captures = match("GET", "volumes/*") {
            let id = captures[0]
                return EmulatorResponse(status: 200, json: .object([("volume", volumeJSON(try volume(id, call), call))]))
        }
        if let captures = match("PUT", "volumes/*") {
            let id = captures[0]
            return try updateVolume(id, call)
        }
        if let captures = match("DELETE", "volumes/*") {
            let id = captures[0]
            return try deleteVolume(id, call)
        }
        if let captures = match("GET", "volumes/*/metadata") {
            let id = captures[0]
                return EmulatorResponse(status: 200, json: .object([("metadata", .stringMap(try volume(id, call).metadata))]))
        }
        if let captures = match("POST", "volumes/*/metadata") {
            return try setVolumeMetadata(captures[0], call, replace: false)
        }
        if let captures = match("PUT", "volumes/*/metadata") {
            return try setVolumeMetadata(captures[0], call, replace: true)
        }
        if let captures = match("DELETE", "volumes/*/metadata/*") {
            let id = captures[0]
            let key = captures[1]
                let index = try volumeIndex(id, call)
                guard records.volumes[index].metadata.removeValue(forKey: key) != nil else {
                    throw ServiceRejection(404, "Metadata item was not found")
                }
                return EmulatorResponse(status: 200, json: nil)
        }
        if let captures = match("POST", "volumes/*/action") {
            let id = captures[0]
            return try volumeAction(id, call)
        }
        if match("GET", "snapshots") != nil {
            return try listSnapshots(call, detail: false)
        }
        if match("GET", "snapshots/detail") != nil {
            return try listSnapshots(call, detail: true)
        }
        if match("POST", "snapshots") != nil {
            return try createSnapshot(call)
        }
        if let captures = match("GET", "snapshots/*") {
            let id = captures[0]
                return EmulatorResponse(status: 200, json: .object([("snapshot", snapshotJSON(try snapshot(id, call), call, extended: true))]))
        }
        if let captures = match("DELETE", "snapshots/*") {
            let id = captures[0]
            return try deleteSnapshot(id, call)
        }
        if let captures = match("POST", "snapshots/*/action") {
            let id = captures[0]
            return try snapshotAction(id, call)
        }
        if let captures = match("GET", "os-quota-sets/*") {
            let projectID = captures[0]
            return try quotaSet(projectID, call)
        }
        if let captures = match("PUT", "os-quota-sets/*") {
            let projectID = captures[0]
            return try updateQuotaSet(projectID, call)
        }
        throw ServiceRejection(404, "The resource could not be found.")
    }

    // MARK: Lookups

    func volumeIndex(_ id: String, _ call: BlockStorageCall) throws(ServiceRejection) -> Int {
        guard let index = records.volumes.firstIndex(where: { $0.id == id }),
            call.caller.isAdmin || records.volumes[index].projectID == call.caller.projectID
        else { throw ServiceRejection(404, "Volume \(id) could not be found.") }
        return index
    }

    private func volume(_ id: String, _ call: BlockStorageCall) throws(ServiceRejection) -> VolumeRecord {
        records.volumes[try volumeIndex(id, call)]
    }

    func snapshotIndex(_ id: String, _ call: BlockStorageCall) throws(ServiceRejection) -> Int {
        guard let index = records.snapshots.firstIndex(where: { $0.id == id }),
            call.caller.isAdmin || records.snapshots[index].projectID == call.caller.projectID
        else { throw ServiceRejection(404, "Snapshot \(id) could not be found.") }
        return index
    }

    private func snapshot(_ id: String, _ call: BlockStorageCall) throws(ServiceRejection) -> SnapshotRecord {
        records.snapshots[try snapshotIndex(id, call)]
    }

    // MARK: Bodies

    func volumeJSON(_ volume: VolumeRecord, _ call: BlockStorageCall, includeTenant: Bool = true) -> JSON {
        let version = call.version
        let link = "\(baseURL)/volume/v3/\(volume.projectID)/volumes/\(volume.id)"
        let bookmark = "\(baseURL)/volume/\(volume.projectID)/volumes/\(volume.id)"
        var attachments: [JSON] = []
        if let attachment = volume.attachment, volume.status == "in-use" || volume.status == "detaching" {
            let server = records.servers.first { $0.id == attachment.serverID }
            attachments.append(
                .object([
                    ("server_id", .string(attachment.serverID)), ("attachment_id", .string(attachment.id)),
                    ("attached_at", .optional(attachment.attachedAt.map(Identifiers.cinderTime))),
                    ("host_name", .optional(server.map { "\($0.name)-host" })), ("volume_id", .string(volume.id)),
                    ("device", .string(attachment.device)), ("id", .string(volume.id)),
                ]))
        }
        var members: [(String, JSON)] = [
            ("id", .string(volume.id)), ("status", .string(volume.status)), ("size", .int(volume.size)),
            ("availability_zone", .string(volume.availabilityZone)), ("created_at", .string(Identifiers.cinderTime(volume.createdAt))),
            ("updated_at", .optional(volume.updatedAt.map(Identifiers.cinderTime))), ("name", .optional(volume.name)),
            ("description", .optional(volume.description)), ("volume_type", .string("__DEFAULT__")),
            ("snapshot_id", .optional(volume.snapshotID)), ("source_volid", .optional(volume.sourceVolumeID)),
            ("metadata", .stringMap(volume.metadata)),
            (
                "links",
                .array([
                    .object([("rel", .string("self")), ("href", .string(link))]),
                    .object([("rel", .string("bookmark")), ("href", .string(bookmark))]),
                ])
            ),
            ("user_id", .string(volume.userID)), ("bootable", .string(volume.bootable ? "true" : "false")),
            ("encrypted", .bool(false)), ("replication_status", .null), ("consistencygroup_id", .null),
            ("multiattach", .bool(false)), ("attachments", .array(attachments)),
        ]
        if version >= APIMicroversion(3, 13) { members.append(("group_id", .null)) }
        if version >= APIMicroversion(3, 48) {
            members.append(("shared_targets", .bool(true)))
            members.append(("service_uuid", .null))
        }
        if version >= APIMicroversion(3, 63) { members.append(("volume_type_id", .string(Identifiers.stableUUID("volume-type", "__DEFAULT__")))) }
        if version >= APIMicroversion(3, 65) { members.append(("consumes_quota", .bool(true))) }
        if call.caller.isAdmin {
            members.append(("os-vol-host-attr:host", .string("emulator@lvm#lvm")))
            members.append(("os-vol-mig-status-attr:migstat", .null))
            members.append(("os-vol-mig-status-attr:name_id", .null))
            members.append(("migration_status", .null))
        }
        if includeTenant { members.append(("os-vol-tenant-attr:tenant_id", .string(volume.projectID))) }
        return .object(members)
    }

    func snapshotJSON(_ snapshot: SnapshotRecord, _ call: BlockStorageCall, extended: Bool) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(snapshot.id)), ("created_at", .string(Identifiers.cinderTime(snapshot.createdAt))),
            ("updated_at", .optional(snapshot.updatedAt.map(Identifiers.cinderTime))), ("name", .optional(snapshot.name)),
            ("description", .optional(snapshot.description)), ("volume_id", .string(snapshot.volumeID)),
            ("status", .string(snapshot.status)), ("size", .int(snapshot.size)), ("metadata", .stringMap(snapshot.metadata)),
        ]
        if call.version >= APIMicroversion(3, 14) { members.append(("group_snapshot_id", .null)) }
        if call.version >= APIMicroversion(3, 41) { members.append(("user_id", .string(snapshot.userID))) }
        if call.version >= APIMicroversion(3, 65) { members.append(("consumes_quota", .bool(true))) }
        if extended {
            members.append(("os-extended-snapshot-attributes:project_id", .string(snapshot.projectID)))
            members.append(("os-extended-snapshot-attributes:progress", .string(snapshot.status == "available" ? "100%" : "0%")))
        }
        return .object(members)
    }

    // MARK: Filters

    /// The filters a request asks for, after Cinder's checks (unknown ones are 400 from 3.31 for non-admins).
    func filters(_ call: BlockStorageCall, allowed: Set<String>) throws(ServiceRejection) -> [(String, String)] {
        let paging: Set<String> = ["limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count", "all_tenants", "project_id"]
        var result: [(String, String)] = []
        var invalid: [String] = []
        for (key, value) in call.request.query where !paging.contains(key) {
            if allowed.contains(key) || call.caller.isAdmin {
                result.append((key, value))
            } else {
                invalid.append(key)
            }
        }
        if !invalid.isEmpty, call.version >= APIMicroversion(3, 31) {
            throw ServiceRejection(400, "Invalid filters \(invalid.joined(separator: ", ")) are found in query options.")
        }
        return result
    }

    /// Whether `metadata` contains every pair of the `metadata` filter (a JSON or Python-literal dict).
    func matchesMetadataFilter(_ metadata: [String: String], _ text: String) -> Bool {
        let normalized = text.replacingOccurrences(of: "'", with: "\"")
        guard let wanted = (try? JSON.parse(Array(normalized.utf8)))?.stringMap else { return false }
        return wanted.allSatisfy { metadata[$0.key] == $0.value }
    }

    /// The project ids a listing covers: the caller's, or with `all_tenants` (admin) all or `project_id`.
    func listedProjects(_ call: BlockStorageCall) -> Set<String>? {
        let allTenants = call.request.queryValue("all_tenants").map { $0.isEmpty || (JSON.string($0).bool ?? false) } ?? false
        if call.caller.isAdmin && allTenants {
            if let project = call.request.queryValue("project_id") { return [project] }
            return nil
        }
        return [call.caller.projectID]
    }

    private func listVolumes(_ call: BlockStorageCall, detail: Bool) throws -> EmulatorResponse {
        let allowed: Set<String> = [
            "name", "status", "metadata", "bootable", "migration_status", "availability_zone", "group_id", "size",
            "created_at", "updated_at", "consumes_quota",
        ]
        let filters = try filters(call, allowed: allowed)
        let projects = listedProjects(call)
        var volumes = records.volumes.filter { volume in
            guard projects?.contains(volume.projectID) ?? true else { return false }
            for (key, value) in filters {
                switch key {
                case "name": if volume.name != value { return false }
                case "status": if volume.status != value { return false }
                case "metadata": if !matchesMetadataFilter(volume.metadata, value) { return false }
                case "bootable": if (JSON.string(value).bool ?? false) != volume.bootable { return false }
                case "availability_zone": if volume.availabilityZone != value { return false }
                case "size": if String(volume.size) != value { return false }
                default: continue
                }
            }
            return true
        }
        volumes.sort { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        let page = try Page.make(
            volumes, id: \.id, request: call.request,
            linkBase: "\(baseURL)/volume/v3/\(call.caller.projectID)/volumes\(detail ? "/detail" : "")",
            notFound: { ServiceRejection(404, "Volume \($0) could not be found.") })
        let items: [JSON] = page.items.map { volume in
            detail
                ? volumeJSON(volume, call)
                : .object([
                    ("id", .string(volume.id)),
                    ("links", (volumeJSON(volume, call)["links"]) ?? .array([])), ("name", .optional(volume.name)),
                ])
        }
        var members: [(String, JSON)] = [("volumes", .array(items))]
        if let links = page.links { members.append(("volumes_links", links)) }
        if call.version >= APIMicroversion(3, 45), call.request.queryValue("with_count").flatMap({ JSON.string($0).bool }) == true {
            members.append(("count", .int(volumes.count)))
        }
        return EmulatorResponse(status: 200, json: .object(members))
    }

    private func listSnapshots(_ call: BlockStorageCall, detail: Bool) throws -> EmulatorResponse {
        let filters = try filters(call, allowed: ["name", "status", "volume_id", "metadata", "availability_zone", "consumes_quota"])
        let projects = listedProjects(call)
        var snapshots = records.snapshots.filter { snapshot in
            guard projects?.contains(snapshot.projectID) ?? true else { return false }
            for (key, value) in filters {
                switch key {
                case "name": if snapshot.name != value { return false }
                case "status": if snapshot.status != value { return false }
                case "volume_id": if snapshot.volumeID != value { return false }
                case "metadata": if !matchesMetadataFilter(snapshot.metadata, value) { return false }
                default: continue
                }
            }
            return true
        }
        snapshots.sort { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        let page = try Page.make(
            snapshots, id: \.id, request: call.request,
            linkBase: "\(baseURL)/volume/v3/\(call.caller.projectID)/snapshots\(detail ? "/detail" : "")",
            notFound: { ServiceRejection(404, "Snapshot \($0) could not be found.") })
        var members: [(String, JSON)] = [("snapshots", .array(page.items.map { snapshotJSON($0, call, extended: detail) }))]
        if let links = page.links { members.append(("snapshots_links", links)) }
        return EmulatorResponse(status: 200, json: .object(members))
    }

    // MARK: Quotas

    func projectIndex(_ id: String) -> Int? { records.projects.firstIndex { $0.id == id } }

    /// Rejects a new volume (or snapshot) of `size` that would exceed the project's quota (413 overLimit).
    func checkQuota(projectID: String, volumes newVolumes: Int, snapshots newSnapshots: Int, size: Int) throws(ServiceRejection) {
        guard let project = projectIndex(projectID).map({ records.projects[$0] }) else { return }
        let quota = project.quota
        let volumes = records.volumes.filter { $0.projectID == projectID }
        let snapshots = records.snapshots.filter { $0.projectID == projectID }
        if newVolumes > 0, quota.volumes >= 0, volumes.count + newVolumes > quota.volumes {
            throw ServiceRejection(
                response: ServiceFault.response(
                    413, "VolumeLimitExceeded: Maximum number of volumes allowed (\(quota.volumes)) exceeded for quota 'volumes'.",
                    retryAfter: "0"))
        }
        if newSnapshots > 0, quota.snapshots >= 0, snapshots.count + newSnapshots > quota.snapshots {
            throw ServiceRejection(
                response: ServiceFault.response(
                    413, "SnapshotLimitExceeded: Maximum number of snapshots allowed (\(quota.snapshots)) exceeded",
                    retryAfter: "0"))
        }
        let used = volumes.reduce(0) { $0 + $1.size } + snapshots.reduce(0) { $0 + $1.size }
        if quota.gigabytes >= 0, used + size > quota.gigabytes {
            throw ServiceRejection(
                response: ServiceFault.response(
                    413,
                    "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested \(size)G, quota is \(quota.gigabytes)G and \(used)G has been consumed.",
                    retryAfter: "0"))
        }
    }

    private func quotaSet(_ projectID: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        guard call.caller.isAdmin || projectID == call.caller.projectID, let index = projectIndex(projectID) else {
            throw ServiceRejection(403, "Policy doesn't allow volume_extension:quotas:show to be performed.")
        }
        let quota = records.projects[index].quota
        return EmulatorResponse(
            status: 200,
            json: .object([
                (
                    "quota_set",
                    .object([
                        ("id", .string(projectID)), ("volumes", .int(quota.volumes)), ("snapshots", .int(quota.snapshots)),
                        ("gigabytes", .int(quota.gigabytes)),
                    ])
                )
            ]))
    }

    private func updateQuotaSet(_ projectID: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        guard call.caller.isAdmin else {
            throw ServiceRejection(403, "Policy doesn't allow volume_extension:quotas:update to be performed.")
        }
        guard let index = projectIndex(projectID), let set = call.request.jsonBody()?["quota_set"] else {
            throw ServiceRejection(400, "Missing required element 'quota_set' in request body.")
        }
        if let value = set["volumes"]?.int { records.projects[index].quota.volumes = value }
        if let value = set["snapshots"]?.int { records.projects[index].quota.snapshots = value }
        if let value = set["gigabytes"]?.int { records.projects[index].quota.gigabytes = value }
        return try quotaSet(projectID, call)
    }
}

/// One Cinder call: the request, its caller, the negotiated microversion and the path after the project id.
struct BlockStorageCall {
    var request: EmulatorRequest
    var caller: Caller
    var version: APIMicroversion
    var path: [String]
}

extension EmulatorResponse {
    /// Adds headers.
    func adding(_ extra: [(String, String)]) -> EmulatorResponse {
        var copy = self
        copy.headers += extra
        return copy
    }
}
