import Foundation
import Logging

/// Nova v2.1 under `/compute`: the version documents, then `/compute/v2.1/...` (an optional project id
/// after `v2.1` is accepted, as older catalogs add it).
extension CloudState {
    func compute(_ request: EmulatorRequest, rest: [String]) throws -> EmulatorResponse {
        let policy = MicroversionPolicy.compute
        if rest.isEmpty {
            return EmulatorResponse(status: 300, json: .object([("versions", .array([novaVersion()]))]))
        }
        guard rest[0] == "v2.1" else { return ServiceFault.response(404, "The resource could not be found.") }
        if rest.count == 1 && request.method == "GET" {
            return EmulatorResponse(status: 200, json: .object([("version", novaVersion())]))
        }
        let caller = try caller(request)
        let version = try policy.negotiate(request)
        var path = Array(rest.dropFirst())
        if path.first == caller.projectID { path.removeFirst() }
        let call = ComputeCall(request: request, caller: caller, version: version, path: path)
        let echo = policy.headers(for: version) + [("X-Compute-Request-Id", request.requestID)]
        do {
            return try computeRoute(call).adding(echo)
        } catch let rejection as ServiceRejection {
            return rejection.response.adding(echo)
        }
    }

    private func novaVersion() -> JSON {
        .object([
            ("id", .string("v2.1")), ("status", .string("CURRENT")),
            ("version", .string(MicroversionPolicy.compute.maximum.description)),
            ("min_version", .string(MicroversionPolicy.compute.minimum.description)),
            ("updated", .string("2013-07-23T11:33:21Z")),
            (
                "links",
                .array([
                    .object([("rel", .string("self")), ("href", .string(baseURL + "/compute/v2.1/"))]),
                    .object([("rel", .string("describedby")), ("type", .string("text/html")), ("href", .string("http://docs.openstack.org/"))]),
                ])
            ),
            (
                "media-types",
                .array([.object([("base", .string("application/json")), ("type", .string("application/vnd.openstack.compute+json;version=2.1"))])])
            ),
        ])
    }

    private func computeRoute(_ call: ComputeCall) throws -> EmulatorResponse {
        let match = RouteMatcher(method: call.request.method, path: call.path)
        if match("GET", "servers") != nil {
            return try listServers(call, detail: false)
        }
        if match("GET", "servers/detail") != nil {
            return try listServers(call, detail: true)
        }
        if match("POST", "servers") != nil {
            return try createServer(call)
        }
        if let captures = match("GET", "servers/*") {
            let id = captures[0]
                return EmulatorResponse(status: 200, json: .object([("server", serverJSON(records.servers[try serverIndex(id, call)], call))]))
        }
        if let captures = match("DELETE", "servers/*") {
            let id = captures[0]
            return try deleteServer(id, call)
        }
        if match("GET", "flavors") != nil || match("GET", "flavors/detail") != nil {
                let detail = call.path.count == 2
                return EmulatorResponse(
                    status: 200,
                    json: .object([
                        ("flavors", .array(records.flavors.map { detail ? flavorJSON($0, call) : flavorSummary($0) }))
                    ]))
        }
        if let captures = match("GET", "flavors/*") {
            let id = captures[0]
                guard let flavor = records.flavors.first(where: { $0.id == id }) else {
                    throw ServiceRejection(404, "Flavor \(id) could not be found.")
                }
                return EmulatorResponse(status: 200, json: .object([("flavor", flavorJSON(flavor, call))]))
        }
        if let captures = match("PUT", "servers/*/metadata") {
            let index = try serverIndex(captures[0], call)
            guard let metadata = call.request.jsonBody()?["metadata"]?.stringMap else {
                throw ServiceRejection(400, "Invalid input for field/attribute metadata.")
            }
            records.servers[index].metadata = metadata
            records.servers[index].updatedAt = Date()
            return EmulatorResponse(status: 200, json: .object([("metadata", .stringMap(metadata))]))
        }
        if let captures = match("GET", "servers/*/os-interface") {
            let server = records.servers[try serverIndex(captures[0], call)]
            let interfaces: [JSON] = server.ports.map { port in
                .object([
                    ("port_id", .string(port.id ?? "port-\(port.mac)")), ("net_id", .string(port.networkID)),
                    ("mac_addr", .string(port.mac)), ("port_state", .string("ACTIVE")),
                    ("fixed_ips", .array([.object([("ip_address", .string(port.address)), ("subnet_id", .string("subnet-\(port.networkID)"))])])),
                ])
            }
            return EmulatorResponse(status: 200, json: .object([("interfaceAttachments", .array(interfaces))]))
        }
        if let captures = match("GET", "servers/*/os-volume_attachments") {
            let id = captures[0]
            return try listAttachments(id, call)
        }
        if let captures = match("GET", "servers/*/os-volume_attachments/*") {
            let id = captures[0]
            let volumeID = captures[1]
            return try showAttachment(id, volumeID, call)
        }
        if let captures = match("POST", "servers/*/os-volume_attachments") {
            let id = captures[0]
            return try attachVolume(id, call)
        }
        if let captures = match("DELETE", "servers/*/os-volume_attachments/*") {
            let id = captures[0]
            let volumeID = captures[1]
            return try detachVolume(id, volumeID, call)
        }
        throw ServiceRejection(404, "The resource could not be found.")
    }

    func serverIndex(_ id: String, _ call: ComputeCall) throws(ServiceRejection) -> Int {
        guard let index = records.servers.firstIndex(where: { $0.id == id }),
            call.caller.isAdmin || records.servers[index].projectID == call.caller.projectID
        else { throw ServiceRejection(404, "Instance \(id) could not be found.") }
        return index
    }

    // MARK: Bodies

    private func flavorLinks(_ id: String) -> JSON {
        .array([
            .object([("rel", .string("self")), ("href", .string("\(baseURL)/compute/v2.1/flavors/\(id)"))]),
            .object([("rel", .string("bookmark")), ("href", .string("\(baseURL)/compute/flavors/\(id)"))]),
        ])
    }

    private func flavorSummary(_ flavor: FlavorRecord) -> JSON {
        .object([("id", .string(flavor.id)), ("links", flavorLinks(flavor.id)), ("name", .string(flavor.name))])
    }

    func flavorJSON(_ flavor: FlavorRecord, _ call: ComputeCall) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(flavor.id)), ("name", .string(flavor.name)), ("ram", .int(flavor.ram)), ("disk", .int(flavor.disk)),
            ("swap", call.version >= APIMicroversion(2, 75) ? .int(0) : .string("")),
            ("OS-FLV-EXT-DATA:ephemeral", .int(0)), ("os-flavor-access:is_public", .bool(true)), ("vcpus", .int(flavor.vcpus)),
        ]
        if call.version < APIMicroversion(2, 102) {
            members.append(("rxtx_factor", .double(1.0)))
            members.append(("OS-FLV-DISABLED:disabled", .bool(false)))
        }
        if call.version >= APIMicroversion(2, 55) { members.append(("description", .null)) }
        if call.version >= APIMicroversion(2, 61) { members.append(("extra_specs", .stringMap(flavor.extraSpecs))) }
        members.append(("links", flavorLinks(flavor.id)))
        return .object(members)
    }

    func serverJSON(_ server: ServerRecord, _ call: ComputeCall) -> JSON {
        let version = call.version
        let flavor = records.flavors.first { $0.id == server.flavorID }
        let flavorJSON: JSON
        if version >= APIMicroversion(2, 47) {
            flavorJSON = .object([
                ("vcpus", .int(flavor?.vcpus ?? 0)), ("ram", .int(flavor?.ram ?? 0)), ("disk", .int(flavor?.disk ?? 0)),
                ("ephemeral", .int(0)), ("swap", .int(0)), ("original_name", .string(flavor?.name ?? "")),
                ("extra_specs", .stringMap(flavor?.extraSpecs ?? [:])),
            ])
        } else {
            flavorJSON = .object([("id", .string(server.flavorID)), ("links", flavorLinks(server.flavorID))])
        }
        var addresses: [(String, JSON)] = []
        for port in server.ports {
            let name = records.networks.first { $0.id == port.networkID }?.name ?? port.networkID
            addresses.append(
                (
                    name,
                    .array([
                        .object([
                            ("version", .int(4)), ("addr", .string(port.address)), ("OS-EXT-IPS:type", .string("fixed")),
                            ("OS-EXT-IPS-MAC:mac_addr", .string(port.mac)),
                        ])
                    ])
                ))
        }
        let attached = attachedVolumes(server.id).map { volume -> JSON in
            var members: [(String, JSON)] = [("id", .string(volume.id))]
            if version >= APIMicroversion(2, 3) {
                members.append(("delete_on_termination", .bool(volume.attachment?.deleteOnTermination ?? false)))
            }
            return .object(members)
        }
        var members: [(String, JSON)] = [
            ("id", .string(server.id)), ("name", .string(server.name)), ("status", .string(server.status)),
            ("tenant_id", .string(server.projectID)), ("user_id", .string(server.userID)),
            ("metadata", .stringMap(server.metadata)), ("hostId", .string(Identifiers.stable("host", server.projectID))),
            ("image", .string("")), ("flavor", flavorJSON), ("created", .string(Identifiers.novaTime(server.createdAt))),
            ("updated", .string(Identifiers.novaTime(server.updatedAt))), ("addresses", .object(addresses)),
            ("accessIPv4", .string("")), ("accessIPv6", .string("")),
            (
                "links",
                .array([
                    .object([("rel", .string("self")), ("href", .string("\(baseURL)/compute/v2.1/servers/\(server.id)"))]),
                    .object([("rel", .string("bookmark")), ("href", .string("\(baseURL)/compute/servers/\(server.id)"))]),
                ])
            ),
            ("OS-DCF:diskConfig", .string("MANUAL")), ("progress", .int(server.status == "ACTIVE" ? 0 : 0)),
            ("OS-EXT-AZ:availability_zone", .string(server.availabilityZone)), ("config_drive", .string("")),
            ("key_name", .optional(server.keyName)),
            ("OS-SRV-USG:launched_at", server.status == "BUILD" ? .null : .string(Identifiers.cinderTime(server.createdAt))),
            ("OS-SRV-USG:terminated_at", .null),
            ("security_groups", .array(server.securityGroups.map { .object([("name", .string($0))]) })),
            ("OS-EXT-STS:task_state", .optional(server.taskState)), ("OS-EXT-STS:vm_state", .string(server.vmState)),
            ("OS-EXT-STS:power_state", .int(server.status == "ACTIVE" ? 1 : 0)),
            ("os-extended-volumes:volumes_attached", .array(attached)),
        ]
        if version >= APIMicroversion(2, 9) { members.append(("locked", .bool(server.locked))) }
        if version >= APIMicroversion(2, 19) { members.append(("description", .null)) }
        if version >= APIMicroversion(2, 26) { members.append(("tags", .array([]))) }
        if version >= APIMicroversion(2, 63) { members.append(("trusted_image_certificates", .null)) }
        if version >= APIMicroversion(2, 71) { members.append(("server_groups", .array([]))) }
        if version >= APIMicroversion(2, 73) { members.append(("locked_reason", .null)) }
        if call.caller.isAdmin {
            members.append(("OS-EXT-SRV-ATTR:host", .string("emulator")))
            members.append(("OS-EXT-SRV-ATTR:hypervisor_hostname", .string("emulator")))
            members.append(("OS-EXT-SRV-ATTR:instance_name", .string("instance-\(server.id.prefix(8))")))
        }
        return .object(members)
    }

    /// The volumes attached (or being attached) to a server, by device name.
    func attachedVolumes(_ serverID: String) -> [VolumeRecord] {
        records.volumes.filter { $0.attachment?.serverID == serverID }.sorted { $0.attachment!.device < $1.attachment!.device }
    }

    // MARK: Servers

    private func listServers(_ call: ComputeCall, detail: Bool) throws -> EmulatorResponse {
        let request = call.request
        let allTenants = request.queryValue("all_tenants").map { $0.isEmpty || (JSON.string($0).bool ?? false) } ?? false
        if allTenants && !call.caller.isAdmin {
            throw ServiceRejection(403, "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.")
        }
        var regex: NSRegularExpression?
        if let name = request.queryValue("name") {
            regex = try? NSRegularExpression(pattern: name)
            if regex == nil { throw ServiceRejection(400, "Invalid regular expression in name filter: \(name)") }
        }
        let project = allTenants ? (request.queryValue("project_id") ?? request.queryValue("tenant_id")) : call.caller.projectID
        let statuses = request.query.filter { $0.0 == "status" }.map { $0.1.uppercased() }
        var servers = records.servers.filter { server in
            if let project, server.projectID != project { return false }
            if !statuses.isEmpty && !statuses.contains(server.status) { return false }
            if let regex {
                let range = NSRange(server.name.startIndex..., in: server.name)
                if regex.firstMatch(in: server.name, range: range) == nil { return false }
            }
            if let az = request.queryValue("availability_zone"), server.availabilityZone != az { return false }
            return true
        }
        servers.sort { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        let page = try Page.make(
            servers, id: \.id, request: request, linkBase: "\(baseURL)/compute/v2.1/servers\(detail ? "/detail" : "")",
            notFound: { ServiceRejection(400, "marker [\($0)] not found") })
        let items: [JSON] = page.items.map { server in
            detail
                ? serverJSON(server, call)
                : .object([("id", .string(server.id)), ("links", serverJSON(server, call)["links"] ?? .array([])), ("name", .string(server.name))])
        }
        var members: [(String, JSON)] = [("servers", .array(items))]
        if let links = page.links { members.append(("servers_links", links)) }
        return EmulatorResponse(status: 200, json: .object(members))
    }

    private func deleteServer(_ id: String, _ call: ComputeCall) throws -> EmulatorResponse {
        let index = try serverIndex(id, call)
        let server = records.servers[index]
        if server.locked { throw ServiceRejection(409, "Instance \(id) is locked") }
        let now = Date()
        for volumeIndex in records.volumes.indices where records.volumes[volumeIndex].attachment?.serverID == id {
            let attachment = records.volumes[volumeIndex].attachment!
            withdrawDevice(volumeID: records.volumes[volumeIndex].id, attachment: attachment)
            records.volumes[volumeIndex].attachment = nil
            records.volumes[volumeIndex].updatedAt = now
            if attachment.deleteOnTermination {
                records.volumes[volumeIndex].status = "deleting"
                records.volumes[volumeIndex].pending = PendingTransition(status: "deleted", due: due(now))
            } else {
                records.volumes[volumeIndex].status = "available"
                records.volumes[volumeIndex].pending = nil
            }
        }
        records.servers.remove(at: index)
        logger.info("server deleted", metadata: ["osb-server": "\(id)"])
        return EmulatorResponse(status: 204, json: nil)
    }
}

/// One Nova call: the request, its caller, the negotiated microversion and the path after `v2.1`.
struct ComputeCall {
    var request: EmulatorRequest
    var caller: Caller
    var version: APIMicroversion
    var path: [String]
}
