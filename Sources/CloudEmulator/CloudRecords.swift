import Foundation

// The emulator's persistent records: what Keystone, Nova and Cinder would keep in their databases.
// They are internal and Codable; `CloudState` holds them and `StateFile` writes them as JSON.

/// A Keystone project (always in the `default` domain).
struct ProjectRecord: Codable, Sendable {
    var id: String
    var name: String
    /// Cinder quotas of the project.
    var quota: QuotaRecord = QuotaRecord()
}

/// Cinder quotas of one project; `-1` means unlimited.
struct QuotaRecord: Codable, Sendable {
    var volumes: Int = 50
    var snapshots: Int = 50
    var gigabytes: Int = 5000
}

/// A Keystone user (always in the `default` domain).
struct UserRecord: Codable, Sendable {
    var id: String
    var name: String
    var password: String
    var defaultProjectID: String?
    /// Role names per project id (implied roles are added when a token is issued).
    var roles: [String: [String]]
}

/// A Keystone application credential: it authenticates as its user, scoped to its project.
struct ApplicationCredentialRecord: Codable, Sendable {
    var id: String
    var name: String
    var userID: String
    var projectID: String
    var secret: String
    var roles: [String]
}

/// An issued token. The token string is random and opaque (Fernet-like length), never logged.
struct TokenRecord: Codable, Sendable {
    var id: String
    var userID: String
    var projectID: String?
    var methods: [String]
    var auditIDs: [String]
    var issuedAt: Date
    var expiresAt: Date
    var applicationCredentialID: String?
    var roles: [String]
    var revoked: Bool = false
}

/// A Nova flavor.
struct FlavorRecord: Codable, Sendable {
    var id: String
    var name: String
    var vcpus: Int
    var ram: Int
    var disk: Int
    var extraSpecs: [String: String] = [:]
}

/// A Neutron network, as far as Nova's `networks` and `addresses` need one.
struct NetworkRecord: Codable, Sendable {
    var id: String
    var name: String
}

/// A server's port on a network.
struct PortRecord: Codable, Sendable {
    /// The port id (absent in state files written before ports had one).
    var id: String?
    var networkID: String
    var address: String
    var mac: String
}

/// A Nova server.
struct ServerRecord: Codable, Sendable {
    var id: String
    var name: String
    var projectID: String
    var userID: String
    var flavorID: String
    var status: String
    var vmState: String
    var taskState: String?
    var availabilityZone: String
    var keyName: String?
    var metadata: [String: String]
    var securityGroups: [String]
    var ports: [PortRecord]
    var createdAt: Date
    var updatedAt: Date
    var locked: Bool = false
    /// The root volume (boot index 0), if the server boots from a volume.
    var rootVolumeID: String?
    /// The most disk devices this server may have (Nova's `max_disk_devices_to_attach`), or nil.
    var maxDiskDevices: Int?
    /// Whether attaching a volume to this server makes its device appear under the device directory.
    var isProxy: Bool = false
    /// For a proxy after the first: the folder under the device directory where its devices appear (its
    /// name, fixed when the seed is applied). Nil for the first proxy, whose devices appear in the device
    /// directory itself, and for every other server.
    var deviceSubdirectory: String?
    /// A pending transition (BUILD → ACTIVE).
    var pending: PendingTransition?
}

extension ServerRecord {
    /// Where this proxy sees its attached volumes (under `disk/by-id/`): `root` (the emulator's device
    /// directory) for the first proxy, `<root>/<its name>` for each further one; nil for a server that is
    /// not a proxy.
    func deviceDirectory(root: String) -> String? {
        guard isProxy else { return nil }
        return deviceSubdirectory.map { "\(root)/\($0)" } ?? root
    }
}

/// A status change the scheduler applies once `due` has passed.
struct PendingTransition: Codable, Sendable {
    var status: String
    var due: Date
}

/// A volume's attachment to a server.
struct AttachmentRecord: Codable, Sendable {
    var id: String
    var serverID: String
    var device: String
    var attachedAt: Date?
    var deleteOnTermination: Bool
    var tag: String?
    var bdmID: String
    /// The loop device made for the proxy's view of this volume, if any.
    var loopDevice: String?
    /// When the proxy's device link should appear (a late-device fault), if not yet present.
    var deviceDue: Date?
    /// Whether the proxy's device link exists.
    var devicePresent: Bool = false
}

/// A Cinder volume; its data is the sparse file `volumes/<id>.img` in the state directory.
struct VolumeRecord: Codable, Sendable {
    var id: String
    var name: String?
    var description: String?
    var projectID: String
    var userID: String
    /// Size in GiB (or MiB with `sizeUnit` = MiB).
    var size: Int
    var status: String
    var availabilityZone: String
    var bootable: Bool
    var snapshotID: String?
    var sourceVolumeID: String?
    var metadata: [String: String]
    var createdAt: Date
    var updatedAt: Date?
    var attachment: AttachmentRecord?
    var pending: PendingTransition?
    /// Snapshots to delete together with this volume (cascade).
    var cascade: Bool = false
}

/// A Cinder snapshot; its data is the file `snapshots/<id>.img` in the state directory.
struct SnapshotRecord: Codable, Sendable {
    var id: String
    var name: String?
    var description: String?
    var volumeID: String
    var projectID: String
    var userID: String
    var size: Int
    var status: String
    var metadata: [String: String]
    var createdAt: Date
    var updatedAt: Date?
    var pending: PendingTransition?
}

/// Everything the emulator keeps, persisted as one JSON file.
struct CloudRecords: Codable, Sendable {
    var projects: [ProjectRecord] = []
    var users: [UserRecord] = []
    var applicationCredentials: [ApplicationCredentialRecord] = []
    var tokens: [TokenRecord] = []
    var flavors: [FlavorRecord] = []
    var networks: [NetworkRecord] = []
    var keypairs: [String] = []
    var servers: [ServerRecord] = []
    var volumes: [VolumeRecord] = []
    var snapshots: [SnapshotRecord] = []
    /// The name of the admin user the seed declared (written to clouds.yaml).
    var adminUser: String?
    /// The project the admin user works in.
    var adminProject: String?
    /// The seed's region, if it named one.
    var region: String?
    /// Counter for deterministic fault decisions and ids across restarts.
    var sequence: Int = 0
}
