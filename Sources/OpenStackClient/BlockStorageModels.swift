/// A Cinder volume (`GET /v3/{project}/volumes/{id}`), the fields osbackup uses.
public struct Volume: Sendable, Hashable, Codable {
    /// One attachment of the volume to a server.
    public struct Attachment: Sendable, Hashable, Codable {
        /// The server it is attached to.
        public var serverID: String
        /// The Cinder attachment id.
        public var attachmentID: String?
        /// The device Nova recorded (a hint only; never open it by that name).
        public var device: String?
        /// When it was attached.
        public var attachedAt: String?

        enum CodingKeys: String, CodingKey {
            case device
            case serverID = "server_id"
            case attachmentID = "attachment_id"
            case attachedAt = "attached_at"
        }
    }

    /// The volume id.
    public var id: String
    /// The name (may be absent).
    public var name: String?
    /// The description.
    public var description: String?
    /// The status (`available`, `in-use`, `creating`, ...).
    public var status: String
    /// The size in GiB.
    public var size: Int
    /// The availability zone.
    public var availabilityZone: String?
    /// Whether it is bootable (Cinder sends the strings `"true"` / `"false"`).
    public var bootable: String?
    /// Whether it is encrypted.
    public var encrypted: Bool?
    /// Whether it may be attached to several servers.
    public var multiattach: Bool?
    /// The volume type's name.
    public var volumeType: String?
    /// The snapshot it was made from.
    public var snapshotID: String?
    /// The volume it was cloned from.
    public var sourceVolumeID: String?
    /// Its metadata.
    public var metadata: [String: String]?
    /// Its attachments.
    public var attachments: [Attachment]
    /// The owning project (admin view).
    public var projectID: String?
    /// Creation time, as Cinder writes it.
    public var createdAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, description, status, size, bootable, encrypted, multiattach, metadata, attachments
        case availabilityZone = "availability_zone"
        case volumeType = "volume_type"
        case snapshotID = "snapshot_id"
        case sourceVolumeID = "source_volid"
        case projectID = "os-vol-tenant-attr:tenant_id"
        case createdAt = "created_at"
    }

    /// Whether the volume can boot a server.
    public var isBootable: Bool { bootable?.lowercased() == "true" }
}

/// A Cinder snapshot.
public struct Snapshot: Sendable, Hashable, Codable {
    /// The snapshot id.
    public var id: String
    /// The name.
    public var name: String?
    /// The description.
    public var description: String?
    /// The volume it is a snapshot of.
    public var volumeID: String
    /// The status (`creating`, `available`, `deleting`, `error`, ...).
    public var status: String
    /// The size in GiB.
    public var size: Int
    /// Its metadata.
    public var metadata: [String: String]?
    /// Creation time.
    public var createdAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, description, status, size, metadata
        case volumeID = "volume_id"
        case createdAt = "created_at"
    }
}

/// What to create with `POST /v3/{project}/volumes`.
public struct VolumeCreateRequest: Sendable, Hashable {
    /// The size in GiB (nil with a snapshot: the snapshot's size).
    public var size: Int?
    /// The name.
    public var name: String?
    /// The description.
    public var description: String?
    /// The snapshot to make it from.
    public var snapshotID: String?
    /// The volume type's name.
    public var volumeType: String?
    /// The availability zone.
    public var availabilityZone: String?
    /// Metadata.
    public var metadata: [String: String]

    /// Creates a request.
    public init(
        size: Int? = nil, name: String? = nil, description: String? = nil, snapshotID: String? = nil,
        volumeType: String? = nil, availabilityZone: String? = nil, metadata: [String: String] = [:]
    ) {
        self.size = size
        self.name = name
        self.description = description
        self.snapshotID = snapshotID
        self.volumeType = volumeType
        self.availabilityZone = availabilityZone
        self.metadata = metadata
    }

    var body: [String: Any] {
        var volume: [String: Any] = ["metadata": metadata]
        if let size { volume["size"] = size }
        if let name { volume["name"] = name }
        if let description { volume["description"] = description }
        if let snapshotID { volume["snapshot_id"] = snapshotID }
        if let volumeType { volume["volume_type"] = volumeType }
        if let availabilityZone { volume["availability_zone"] = availabilityZone }
        return ["volume": volume]
    }
}

/// Filters of `GET /v3/{project}/volumes/detail`.
public struct VolumeFilter: Sendable, Hashable {
    /// Exact name.
    public var name: String?
    /// Exact status.
    public var status: String?
    /// Metadata that must match.
    public var metadata: [String: String]
    /// All projects (admin only).
    public var allProjects: Bool
    /// One project, with `allProjects` (admin only).
    public var projectID: String?
    /// Items per page.
    public var pageSize: Int?

    /// Creates a filter; every field defaults to "any".
    public init(
        name: String? = nil, status: String? = nil, metadata: [String: String] = [:], allProjects: Bool = false,
        projectID: String? = nil, pageSize: Int? = nil
    ) {
        self.name = name
        self.status = status
        self.metadata = metadata
        self.allProjects = allProjects
        self.projectID = projectID
        self.pageSize = pageSize
    }
}
