import Logging
import OpenStackClient

import Foundation

/// Boots a new server from restored volumes as the `.conf` describes the original: its flavor, networks,
/// security groups, key pair, zone and metadata, each overridable, the boot volume at boot index 0.
///
/// The server is journaled and tagged until it is `ACTIVE`, so a failure or a crash deletes it (releasing
/// the volumes, which the restore then deletes too); then the tags go.
struct ServerRebuilder: Sendable {
    let cloud: CloudServices
    let request: CloudRestoreRequest
    let options: CloudRestoreRequest.NewServerOptions
    let logger: Logger

    /// Creates the server from `volumes` (all of one original server), waits for `ACTIVE`, and returns its id.
    func create(from volumes: [WrittenVolume], originalServerID: String, journal: ResourceJournal) async throws -> String {
        let resource = "server \(originalServerID.isEmpty ? "(none)" : originalServerID)"
        guard !originalServerID.isEmpty, let saved = volumes.first?.planned.configuration?.server else {
            throw BackupError(
                .configuration, resource: resource, "--new-server needs volumes of a backed-up server; these were attached to no server",
                hint: "restore them with --to-cloud alone")
        }
        let requestTag = UUID().uuidString.lowercased()
        let name = options.name ?? request.namePrefix + saved.name
        let createRequest = ServerCreateRequest(
            name: name, flavorID: try await flavorID(saved: saved.flavor, resource: resource),
            blockDevices: try blockDevices(volumes, resource: resource), networks: try networks(saved: saved, resource: resource),
            securityGroups: saved.securityGroups, keyName: options.keyName ?? saved.keyName,
            availabilityZone: options.availabilityZone ?? saved.availabilityZone,
            metadata: saved.metadata.merging(
                [CloudTags.job: journal.jobID, CloudTags.proxy: journal.proxyServerID, CloudTags.request: requestTag]) { _, tag in tag })
        let key = try journal.record(JournalEntry(kind: .server, id: nil, requestTag: requestTag, name: name, sourceVolumeID: originalServerID))
        let serverID = try await cloud.compute.createServer(createRequest)
        try journal.setID(serverID, for: key)
        logger.info("new server booting", metadata: ["osb-server": "\(serverID)", "osb-original-server": "\(originalServerID)"])
        do {
            _ = try await cloud.compute.waitForServer(
                id: serverID, statuses: ["ACTIVE"], policy: StatusWaitPolicy(timeout: request.serverTimeout))
        } catch {
            throw BackupError(
                .failed, resource: "new server \(serverID) (restore of \(originalServerID))", "it did not become ACTIVE: \(error)",
                hint: "the server and its restored volumes are deleted; check the flavor, networks and quotas, then run again")
        }
        try await cloud.compute.replaceServerMetadata(id: serverID, saved.metadata)
        try journal.remove(key)
        return serverID
    }

    /// The flavor's id: `--flavor` (an id or a name), else the saved flavor, looked up by id and by name
    /// (from Nova 2.47 a server embeds its flavor's name, not its id).
    private func flavorID(saved: Server.FlavorInfo?, resource: String) async throws -> String {
        let wanted = options.flavor ?? saved?.id ?? saved?.originalName
        guard let wanted else {
            throw BackupError(.configuration, resource: resource, "the backup does not name the server's flavor", hint: "give --flavor")
        }
        let flavors = try await cloud.compute.flavors()
        // An explicit --flavor is taken as given; a saved one may be an id that changed and a name that did not.
        let savedName = options.flavor == nil ? saved?.originalName : nil
        if let flavor = flavors.first(where: { $0.id == wanted }) ?? flavors.first(where: { $0.name == wanted })
            ?? savedName.flatMap({ name in flavors.first { $0.name == name } })
        {
            return flavor.id
        }
        throw BackupError(
            .notFound, resource: resource, "flavor \(wanted) does not exist in this cloud (or is not visible to this project)",
            hint: "give --flavor with an existing flavor id or name")
    }

    /// The block devices: the saved boot volume at index 0, the others after it in their order.
    private func blockDevices(_ volumes: [WrittenVolume], resource: String) throws -> [ServerCreateRequest.BlockDevice] {
        let ordered = volumes.sorted { ($0.planned.savedVolume?.bootIndex ?? Int.max) < ($1.planned.savedVolume?.bootIndex ?? Int.max) }
        let boot = ordered.first { $0.planned.savedVolume?.bootIndex == 0 }
            ?? (ordered.filter { $0.planned.savedVolume?.bootable == true }.count == 1 ? ordered.first { $0.planned.savedVolume?.bootable == true } : nil)
        guard let boot else {
            throw BackupError(
                .configuration, resource: resource,
                "none of the restored volumes is the server's boot volume (an image-backed server's root disk is not in the backup)",
                hint: "select the server's boot volume too, or restore the volumes with --to-cloud alone and boot by hand")
        }
        return [boot] .map { ServerCreateRequest.BlockDevice(volumeID: $0.restored.volumeID, bootIndex: 0, deleteOnTermination: false) }
            + ordered.filter { $0.restored.volumeID != boot.restored.volumeID }.map {
                ServerCreateRequest.BlockDevice(volumeID: $0.restored.volumeID, bootIndex: nil, deleteOnTermination: false)
            }
    }

    /// `--network` ids, else the networks of the ports the server had (fixed IPs are not asked for: the
    /// original may still hold them).
    private func networks(saved: ServerConfiguration.ServerInfo, resource: String) throws -> [ServerCreateRequest.Network] {
        if !options.networks.isEmpty { return options.networks.map { .network(id: $0) } }
        guard let interfaces = saved.interfaces else {
            throw BackupError(
                .configuration, resource: resource, "the backup does not record the server's networks (Nova could not list its ports)",
                hint: "give --network NETWORK_ID (repeatable)")
        }
        return interfaces.map { .network(id: $0.networkID) }
    }
}
