public import OpenStackClient

public import Foundation

/// The `.conf` file of a server (or of a volume attached to no server): versioned JSON of what a restore
/// needs to rebuild it. It never holds a password, a token or any other secret: the fields are chosen one
/// by one, nothing is copied wholesale from an API answer.
public struct ServerConfiguration: Codable, Sendable, Hashable {
    /// One saved volume.
    public struct VolumeInfo: Codable, Sendable, Hashable {
        /// The Cinder volume UUID.
        public var id: String
        /// Its original name (nil when it has none).
        public var name: String?
        /// Its size in GiB as Cinder recorded it.
        public var size: Int
        /// Its volume type.
        public var volumeType: String?
        /// Whether it is bootable.
        public var bootable: Bool
        /// Its boot index (0: the root disk of a boot-from-volume server).
        public var bootIndex: Int?
        /// The device name Nova reported (informational).
        public var device: String?
        /// Its availability zone.
        public var availabilityZone: String?
        /// Its metadata, without osbackup's own keys.
        public var metadata: [String: String]
        /// Whether Nova deletes it with the server.
        public var deleteOnTermination: Bool?
    }

    /// The server as it was (nil for a volume attached to no server).
    public struct ServerInfo: Codable, Sendable, Hashable {
        /// The server UUID.
        public var id: String
        /// Its original name.
        public var name: String
        /// Its project.
        public var projectID: String?
        /// Its status at backup time.
        public var status: String
        /// Its availability zone.
        public var availabilityZone: String?
        /// Its flavor (embedded copy from 2.47, or the id before).
        public var flavor: Server.FlavorInfo?
        /// Its image (nil or empty: boot from volume).
        public var imageID: String?
        /// Its key pair name.
        public var keyName: String?
        /// Its metadata.
        public var metadata: [String: String]
        /// Its tags.
        public var tags: [String]
        /// Its security group names.
        public var securityGroups: [String]
        /// Its addresses by network (fixed IPs, MACs) as Nova lists them.
        public var addresses: [String: JSONValue]
        /// Its ports by network id (`os-interface`), which a restore attaches the new server to; nil in
        /// files written before they were saved, or when Nova could not list them.
        public var interfaces: [ServerInterface]?
    }

    /// The format name.
    public var format = "osbackup-server-conf"
    /// The format version.
    public var version = 1
    /// The server (nil for a volume attached to no server).
    public var server: ServerInfo?
    /// The saved volumes.
    public var volumes: [VolumeInfo]
    /// When the backup was taken (ISO 8601).
    public var savedAt: String

    /// The configuration of a server and its saved volumes.
    public init(server: Server, volumes: [Volume], attachments: [VolumeAttachment], interfaces: [ServerInterface]? = nil, savedAt: Date) {
        self.server = ServerInfo(
            id: server.id, name: server.name, projectID: server.projectID, status: server.status,
            availabilityZone: server.availabilityZone, flavor: server.flavor, imageID: server.imageID, keyName: server.keyName,
            metadata: server.metadata ?? [:], tags: server.tags ?? [], securityGroups: server.securityGroups ?? [],
            addresses: server.addresses ?? [:], interfaces: interfaces)
        let isBootFromVolume = (server.imageID ?? "").isEmpty
        let devices = Dictionary(attachments.map { ($0.volumeID.lowercased(), $0.device) }, uniquingKeysWith: { first, _ in first })
        let rootDevice = devices.values.compactMap { $0 }.sorted().first
        self.volumes = volumes.map { volume in
            let device = devices[volume.id.lowercased()] ?? nil
            let isRoot = isBootFromVolume && device != nil && device == rootDevice
            let termination = server.attachedVolumes.first { $0.id.lowercased() == volume.id.lowercased() }?.deleteOnTermination
            return Self.info(volume, bootIndex: isRoot ? 0 : nil, device: device, deleteOnTermination: termination)
        }
        self.savedAt = ISO8601DateFormatter().string(from: savedAt)
    }

    /// The configuration of a volume attached to no server.
    public init(volume: Volume, savedAt: Date) {
        server = nil
        volumes = [Self.info(volume, bootIndex: nil, device: nil, deleteOnTermination: nil)]
        self.savedAt = ISO8601DateFormatter().string(from: savedAt)
    }

    private static func info(_ volume: Volume, bootIndex: Int?, device: String?, deleteOnTermination: Bool?) -> VolumeInfo {
        let ownKeys: Set = [CloudTags.job, CloudTags.proxy, CloudTags.sourceVolume, CloudTags.request]
        return VolumeInfo(
            id: volume.id, name: volume.name.flatMap { $0.isEmpty ? nil : $0 }, size: volume.size, volumeType: volume.volumeType,
            bootable: volume.isBootable, bootIndex: bootIndex, device: device, availabilityZone: volume.availabilityZone,
            metadata: (volume.metadata ?? [:]).filter { !ownKeys.contains($0.key) }, deleteOnTermination: deleteOnTermination)
    }

    /// The JSON bytes (sorted keys, pretty).
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Parses a `.conf` file.
    public static func decode(_ bytes: [UInt8]) throws -> ServerConfiguration {
        let configuration = try JSONDecoder().decode(ServerConfiguration.self, from: Data(bytes))
        guard configuration.format == "osbackup-server-conf", configuration.version == 1 else {
            throw BackupError(.integrity, "not a version 1 osbackup server configuration")
        }
        return configuration
    }
}
