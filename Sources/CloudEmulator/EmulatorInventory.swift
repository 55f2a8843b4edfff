import Foundation

/// Every volume, snapshot and attachment of an emulator's state directory, so tests and operators can
/// prove nothing was leaked. Reads `cloud.json`, so it works while the emulator runs.
public struct EmulatorInventory: Sendable, Codable {
    /// A volume.
    public struct Volume: Sendable, Codable, Hashable {
        /// The volume id.
        public var id: String
        /// The name, if any.
        public var name: String?
        /// The project id.
        public var projectID: String
        /// The size in the emulator's size unit.
        public var size: Int
        /// The Cinder status.
        public var status: String
        /// The metadata.
        public var metadata: [String: String]
    }

    /// A snapshot.
    public struct Snapshot: Sendable, Codable, Hashable {
        /// The snapshot id.
        public var id: String
        /// The name, if any.
        public var name: String?
        /// The volume it was taken from.
        public var volumeID: String
        /// The Cinder status.
        public var status: String
        /// The metadata.
        public var metadata: [String: String]
    }

    /// A volume's attachment to a server.
    public struct Attachment: Sendable, Codable, Hashable {
        /// The volume id.
        public var volumeID: String
        /// The server id.
        public var serverID: String
        /// The server name.
        public var serverName: String
        /// Nova's device name (a hint only).
        public var device: String
        /// The proxy's device link, when the server is a proxy and the device is present.
        public var devicePath: String?
        /// The loop device behind the link, if any.
        public var loopDevice: String?
    }

    /// A server.
    public struct Server: Sendable, Codable, Hashable {
        /// The server id.
        public var id: String
        /// The name.
        public var name: String
        /// The project id.
        public var projectID: String
        /// The Nova status.
        public var status: String
        /// Whether it is a proxy.
        public var isProxy: Bool
        /// Where a proxy sees its attached volumes (under `disk/by-id/`); nil for other servers.
        public var deviceDirectory: String?
    }

    /// The servers.
    public var servers: [Server]
    /// The volumes.
    public var volumes: [Volume]
    /// The snapshots.
    public var snapshots: [Snapshot]
    /// The attachments.
    public var attachments: [Attachment]

    /// Reads the inventory of `stateDirectory`; the device directory defaults to `<state>/dev`.
    public static func load(stateDirectory: String, deviceDirectory: String? = nil) throws -> EmulatorInventory {
        guard let records = try StateFile.read(stateDirectory: stateDirectory) else {
            throw EmulatorError.invalidFile(
                path: stateDirectory + "/" + StateFile.name, what: "emulator state", reason: "no state here yet")
        }
        return EmulatorInventory(records: records, deviceDirectory: deviceDirectory ?? stateDirectory + "/dev")
    }

    init(records: CloudRecords, deviceDirectory: String) {
        servers = records.servers.map {
            Server(
                id: $0.id, name: $0.name, projectID: $0.projectID, status: $0.status, isProxy: $0.isProxy,
                deviceDirectory: $0.deviceDirectory(root: deviceDirectory))
        }
        volumes = records.volumes.map {
            Volume(id: $0.id, name: $0.name, projectID: $0.projectID, size: $0.size, status: $0.status, metadata: $0.metadata)
        }
        snapshots = records.snapshots.map {
            Snapshot(id: $0.id, name: $0.name, volumeID: $0.volumeID, status: $0.status, metadata: $0.metadata)
        }
        attachments = records.volumes.compactMap { volume in
            guard let attachment = volume.attachment else { return nil }
            let server = records.servers.first { $0.id == attachment.serverID }
            let proxyDirectory = server?.deviceDirectory(root: deviceDirectory)
            return Attachment(
                volumeID: volume.id, serverID: attachment.serverID,
                serverName: server?.name ?? "",
                device: attachment.device,
                devicePath: attachment.devicePresent ? proxyDirectory.map { VolumeStorage.deviceLinkPath(volume.id, in: $0) } : nil,
                loopDevice: attachment.loopDevice)
        }
    }

    /// A plain-text listing, one object a line.
    public var text: String {
        var lines: [String] = []
        for server in servers {
            let proxy = server.deviceDirectory.map { " (proxy, devices in \($0))" } ?? ""
            lines.append("server     \(server.id) \(server.status) \(server.name)\(proxy)")
        }
        for volume in volumes {
            lines.append("volume     \(volume.id) \(volume.status) size=\(volume.size) \(volume.name ?? "-")")
        }
        for snapshot in snapshots {
            lines.append("snapshot   \(snapshot.id) \(snapshot.status) volume=\(snapshot.volumeID) \(snapshot.name ?? "-")")
        }
        for attachment in attachments {
            lines.append(
                "attachment \(attachment.volumeID) server=\(attachment.serverName) device=\(attachment.devicePath ?? attachment.device)")
        }
        return lines.joined(separator: "\n")
    }
}
