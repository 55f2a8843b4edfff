import Foundation
import Logging

/// Nova's `POST /servers` from volumes (`block_device_mapping_v2`), as restores use it.
extension CloudState {
    func createServer(_ call: ComputeCall) throws -> EmulatorResponse {
        guard let body = call.request.jsonBody()?["server"] else {
            throw ServiceRejection(400, "Invalid input for field/attribute server. 'server' is a required property")
        }
        guard let name = body["name"]?.string, !name.isEmpty else {
            throw ServiceRejection(400, "Invalid input for field/attribute name. 'name' is a required property")
        }
        guard let flavorRef = body["flavorRef"]?.string ?? body["flavorRef"]?.int.map(String.init),
            let flavor = records.flavors.first(where: { $0.id == flavorRef || $0.name == flavorRef })
        else { throw ServiceRejection(400, "Flavor \(body["flavorRef"]?.text ?? "null") could not be found.") }
        if let image = body["imageRef"]?.string, !image.isEmpty {
            throw ServiceRejection(400, "Image \(image) could not be found.")
        }
        let keyName = body["key_name"]?.string
        if let keyName, !records.keypairs.contains(keyName) { throw ServiceRejection(400, "Invalid key_name provided.") }
        let ports = try serverPorts(body["networks"], call)
        let securityGroups = body["security_groups"]?.array?.compactMap { $0["name"]?.string } ?? ["default"]
        let mappings = body["block_device_mapping_v2"]?.array ?? []
        var volumeIndices: [(Int, Bool)] = []
        var rootVolumeID: String?
        for mapping in mappings {
            guard mapping["source_type"]?.string == "volume", mapping["destination_type"]?.string ?? "volume" == "volume",
                let uuid = mapping["uuid"]?.string
            else {
                throw ServiceRejection(
                    400, "Block Device Mapping is Invalid: the emulator creates servers from existing volumes only.")
            }
            guard let index = records.volumes.firstIndex(where: { $0.id == uuid }),
                call.caller.isAdmin || records.volumes[index].projectID == call.caller.projectID
            else { throw ServiceRejection(400, "Block Device Mapping is Invalid: failed to get volume \(uuid).") }
            guard records.volumes[index].status == "available" else {
                throw ServiceRejection(
                    400,
                    "Invalid volume: Volume \(uuid) status must be available or downloading to reserve, but the current status is \(records.volumes[index].status).")
            }
            if mapping["boot_index"]?.int == 0 {
                rootVolumeID = uuid
                volumeIndices.insert((index, mapping["delete_on_termination"]?.bool ?? false), at: 0)
            } else {
                volumeIndices.append((index, mapping["delete_on_termination"]?.bool ?? false))
            }
        }
        guard rootVolumeID != nil else {
            throw ServiceRejection(
                400,
                "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
        }
        let now = Date()
        let server = ServerRecord(
            id: Identifiers.uuid(), name: name, projectID: call.caller.projectID, userID: call.caller.userID,
            flavorID: flavor.id, status: "BUILD", vmState: "building", taskState: "spawning",
            availabilityZone: body["availability_zone"]?.string ?? "nova", keyName: keyName,
            metadata: body["metadata"]?.stringMap ?? [:], securityGroups: securityGroups, ports: ports, createdAt: now,
            updatedAt: now, rootVolumeID: rootVolumeID, pending: PendingTransition(status: "ACTIVE", due: due(now)))
        records.servers.append(server)
        for (offset, (index, deleteOnTermination)) in volumeIndices.enumerated() {
            let device = "/dev/vd" + String("abcdefghijklmnopqrstuvwxyz".dropFirst(offset).first ?? "z")
            reserve(volumeIndex: index, serverID: server.id, device: device, deleteOnTermination: deleteOnTermination, tag: nil, now: now)
            if offset == 0 { records.volumes[index].bootable = true }
        }
        logger.info("server created", metadata: ["osb-server": "\(server.id)"])
        let link = "\(baseURL)/compute/v2.1/servers/\(server.id)"
        return EmulatorResponse(
            status: 202, headers: [("Location", link)],
            json: .object([
                (
                    "server",
                    .object([
                        ("id", .string(server.id)),
                        (
                            "links",
                            .array([
                                .object([("rel", .string("self")), ("href", .string(link))]),
                                .object([("rel", .string("bookmark")), ("href", .string("\(baseURL)/compute/servers/\(server.id)"))]),
                            ])
                        ),
                        ("OS-DCF:diskConfig", .string("MANUAL")),
                        ("security_groups", .array(securityGroups.map { .object([("name", .string($0))]) })),
                        ("adminPass", .string(String(Identifiers.hex().prefix(12)))),
                    ])
                )
            ]))
    }

    /// The ports of a new server from `networks` (required from 2.37: a list, `"auto"` or `"none"`).
    private func serverPorts(_ networks: JSON?, _ call: ComputeCall) throws(ServiceRejection) -> [PortRecord] {
        guard let networks else {
            if call.version >= APIMicroversion(2, 37) {
                throw ServiceRejection(400, "Invalid input for field/attribute server. 'networks' is a required property")
            }
            return records.networks.prefix(1).map(makePort)
        }
        if networks.string == "none" { return [] }
        if networks.string == "auto" { return records.networks.prefix(1).map(makePort) }
        guard let list = networks.array else {
            throw ServiceRejection(400, "Invalid input for field/attribute networks. Value: \(networks.text).")
        }
        return try list.map { item throws(ServiceRejection) in
            if let port = item["port"]?.string { throw ServiceRejection(400, "Port id \(port) could not be found.") }
            guard let uuid = item["uuid"]?.string, let network = records.networks.first(where: { $0.id == uuid }) else {
                throw ServiceRejection(400, "Network \(item["uuid"]?.string ?? "null") could not be found.")
            }
            return makePort(network)
        }
    }

    func makePort(_ network: NetworkRecord) -> PortRecord {
        let count = records.servers.reduce(0) { $0 + $1.ports.filter { $0.networkID == network.id }.count }
        let networkNumber = (records.networks.firstIndex { $0.id == network.id } ?? 0) + 1
        let host = count + 10
        return PortRecord(
            id: Identifiers.uuid(), networkID: network.id, address: "10.\(networkNumber).\(host / 250).\(host % 250 + 2)",
            mac: String(format: "fa:16:3e:%02x:%02x:%02x", networkNumber, host / 256, host % 256))
    }
}
