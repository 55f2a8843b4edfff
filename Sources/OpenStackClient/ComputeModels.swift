/// A Nova server (`GET /servers/{id}`), the fields a backup records and a restore needs.
public struct Server: Sendable, Hashable, Codable {
    /// A volume attached to the server, as the server lists it.
    public struct AttachedVolume: Sendable, Hashable, Codable {
        /// The volume id.
        public var id: String
        /// Whether Nova deletes the volume with the server (2.3+).
        public var deleteOnTermination: Bool?

        enum CodingKeys: String, CodingKey {
            case id
            case deleteOnTermination = "delete_on_termination"
        }
    }

    /// The server's flavor: a reference `{"id"}` before 2.47, an embedded copy from 2.47.
    public struct FlavorInfo: Sendable, Hashable, Codable {
        /// The flavor id (before 2.47).
        public var id: String?
        /// The flavor name at boot (2.47+).
        public var originalName: String?
        /// vCPUs (2.47+).
        public var vcpus: Int?
        /// RAM in MiB (2.47+).
        public var ram: Int?
        /// Root disk in GiB (2.47+).
        public var disk: Int?
        /// Ephemeral disk in GiB (2.47+).
        public var ephemeral: Int?
        /// Swap in MiB (2.47+).
        public var swap: Int?
        /// Extra specs (2.47+).
        public var extraSpecs: [String: String]?

        enum CodingKeys: String, CodingKey {
            case id, vcpus, ram, disk, ephemeral, swap
            case originalName = "original_name"
            case extraSpecs = "extra_specs"
        }
    }

    /// The server id.
    public var id: String
    /// The name.
    public var name: String
    /// The status (`ACTIVE`, `SHUTOFF`, `BUILD`, `ERROR`, ...).
    public var status: String
    /// The owning project.
    public var projectID: String?
    /// The owning user.
    public var userID: String?
    /// The task in progress, if any: attach and detach fail with 409 while one runs.
    public var taskState: String?
    /// The VM state.
    public var vmState: String?
    /// The availability zone.
    public var availabilityZone: String?
    /// The flavor.
    public var flavor: FlavorInfo?
    /// The image id, nil for a server booted from a volume (Nova sends `""`).
    public var imageID: String?
    /// Volumes attached.
    public var attachedVolumes: [AttachedVolume]
    /// Addresses by network name, as Nova gives them.
    public var addresses: [String: JSONValue]?
    /// Metadata.
    public var metadata: [String: String]?
    /// The key pair's name.
    public var keyName: String?
    /// Security group names.
    public var securityGroups: [String]?
    /// Tags (2.26+).
    public var tags: [String]?
    /// Whether the server is locked.
    public var locked: Bool?

    enum CodingKeys: String, CodingKey {
        case id, name, status, flavor, image, addresses, metadata, tags, locked
        case projectID = "tenant_id"
        case userID = "user_id"
        case taskState = "OS-EXT-STS:task_state"
        case vmState = "OS-EXT-STS:vm_state"
        case availabilityZone = "OS-EXT-AZ:availability_zone"
        case attachedVolumes = "os-extended-volumes:volumes_attached"
        case keyName = "key_name"
        case securityGroups = "security_groups"
    }

    private struct NamedGroup: Codable { var name: String }
    private struct ImageReference: Codable { var id: String }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        status = try container.decodeIfPresent(String.self, forKey: .status) ?? "UNKNOWN"
        projectID = try container.decodeIfPresent(String.self, forKey: .projectID)
        userID = try container.decodeIfPresent(String.self, forKey: .userID)
        taskState = try container.decodeIfPresent(String.self, forKey: .taskState)
        vmState = try container.decodeIfPresent(String.self, forKey: .vmState)
        availabilityZone = try container.decodeIfPresent(String.self, forKey: .availabilityZone)
        flavor = try container.decodeIfPresent(FlavorInfo.self, forKey: .flavor)
        // `image` is "" for a server booted from a volume, else {"id", "links"}.
        imageID = (try? container.decodeIfPresent(ImageReference.self, forKey: .image))?.id
        attachedVolumes = try container.decodeIfPresent([AttachedVolume].self, forKey: .attachedVolumes) ?? []
        addresses = try container.decodeIfPresent([String: JSONValue].self, forKey: .addresses)
        metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
        keyName = try container.decodeIfPresent(String.self, forKey: .keyName)
        securityGroups = try container.decodeIfPresent([NamedGroup].self, forKey: .securityGroups)?.map(\.name)
        tags = try container.decodeIfPresent([String].self, forKey: .tags)
        locked = try container.decodeIfPresent(Bool.self, forKey: .locked)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(status, forKey: .status)
        try container.encodeIfPresent(projectID, forKey: .projectID)
        try container.encodeIfPresent(userID, forKey: .userID)
        try container.encodeIfPresent(taskState, forKey: .taskState)
        try container.encodeIfPresent(vmState, forKey: .vmState)
        try container.encodeIfPresent(availabilityZone, forKey: .availabilityZone)
        try container.encodeIfPresent(flavor, forKey: .flavor)
        if let imageID { try container.encode(ImageReference(id: imageID), forKey: .image) } else { try container.encode("", forKey: .image) }
        try container.encode(attachedVolumes, forKey: .attachedVolumes)
        try container.encodeIfPresent(addresses, forKey: .addresses)
        try container.encodeIfPresent(metadata, forKey: .metadata)
        try container.encodeIfPresent(keyName, forKey: .keyName)
        try container.encodeIfPresent(securityGroups?.map(NamedGroup.init), forKey: .securityGroups)
        try container.encodeIfPresent(tags, forKey: .tags)
        try container.encodeIfPresent(locked, forKey: .locked)
    }
}

/// A Nova flavor (`GET /flavors/{id}`).
public struct Flavor: Sendable, Hashable, Codable {
    /// The flavor id.
    public var id: String
    /// The name.
    public var name: String
    /// RAM in MiB.
    public var ram: Int
    /// Root disk in GiB.
    public var disk: Int
    /// vCPUs.
    public var vcpus: Int
    /// Swap in MiB (Nova sent `""` for none before 2.75).
    public var swap: Int
    /// Ephemeral disk in GiB.
    public var ephemeral: Int?
    /// Extra specs (2.61+).
    public var extraSpecs: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id, name, ram, disk, vcpus, swap
        case ephemeral = "OS-FLV-EXT-DATA:ephemeral"
        case extraSpecs = "extra_specs"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        ram = try container.decode(Int.self, forKey: .ram)
        disk = try container.decode(Int.self, forKey: .disk)
        vcpus = try container.decode(Int.self, forKey: .vcpus)
        swap = (try? container.decode(Int.self, forKey: .swap)) ?? 0
        ephemeral = try container.decodeIfPresent(Int.self, forKey: .ephemeral)
        extraSpecs = try container.decodeIfPresent([String: String].self, forKey: .extraSpecs)
    }
}

/// A network interface of a server as Nova reports it (`os-interface`).
public struct ServerInterface: Sendable, Hashable, Codable {
    /// A fixed IP of the port.
    public struct FixedIP: Sendable, Hashable, Codable {
        /// The address.
        public var ipAddress: String
        /// Its subnet.
        public var subnetID: String?

        enum CodingKeys: String, CodingKey {
            case ipAddress = "ip_address"
            case subnetID = "subnet_id"
        }
    }

    /// The Neutron port id.
    public var portID: String
    /// The network id.
    public var networkID: String
    /// The MAC address.
    public var macAddress: String?
    /// The fixed IPs.
    public var fixedIPs: [FixedIP]?

    /// Creates an interface.
    public init(portID: String, networkID: String, macAddress: String?, fixedIPs: [FixedIP]?) {
        self.portID = portID
        self.networkID = networkID
        self.macAddress = macAddress
        self.fixedIPs = fixedIPs
    }

    enum CodingKeys: String, CodingKey {
        case portID = "port_id"
        case networkID = "net_id"
        case macAddress = "mac_addr"
        case fixedIPs = "fixed_ips"
    }
}

/// A volume attachment as Nova reports it (`os-volume_attachments`).
public struct VolumeAttachment: Sendable, Hashable, Codable {
    /// The volume id.
    public var volumeID: String
    /// The server id.
    public var serverID: String
    /// The device Nova recorded: a hint only, never the path to open.
    public var device: String?
    /// The Cinder attachment id (2.89+).
    public var attachmentID: String?
    /// The block-device-mapping id (2.89+).
    public var bdmID: String?
    /// The tag (2.70+).
    public var tag: String?
    /// Whether the volume goes with the server (2.79+).
    public var deleteOnTermination: Bool?

    enum CodingKeys: String, CodingKey {
        case device, tag
        case volumeID = "volumeId"
        case serverID = "serverId"
        case attachmentID = "attachment_id"
        case bdmID = "bdm_uuid"
        case deleteOnTermination = "delete_on_termination"
    }
}

/// Filters of `GET /servers/detail`.
public struct ServerFilter: Sendable, Hashable {
    /// A regular expression on the name (Nova's semantics; use `^name$` for an exact match).
    public var nameRegex: String?
    /// Servers of every project (admin only).
    public var allProjects: Bool
    /// One project, with `allProjects`.
    public var projectID: String?
    /// A status (`ACTIVE`, ...).
    public var status: String?
    /// Items per page.
    public var pageSize: Int?

    /// Creates a filter; every field defaults to "any".
    public init(nameRegex: String? = nil, allProjects: Bool = false, projectID: String? = nil, status: String? = nil, pageSize: Int? = nil) {
        self.nameRegex = nameRegex
        self.allProjects = allProjects
        self.projectID = projectID
        self.status = status
        self.pageSize = pageSize
    }

    /// A filter matching exactly `name` (regular-expression characters escaped).
    public static func exactName(_ name: String) -> ServerFilter {
        let special = Set("\\^$.|?*+()[]{}")
        let escaped = name.map { special.contains($0) ? "\\\($0)" : String($0) }.joined()
        return ServerFilter(nameRegex: "^\(escaped)$")
    }
}

/// What to boot with `POST /servers` (a restore as a new server).
public struct ServerCreateRequest: Sendable, Hashable {
    /// A disk of the new server.
    public struct BlockDevice: Sendable, Hashable {
        /// The volume.
        public var volumeID: String
        /// 0 for the boot disk, nil for the others.
        public var bootIndex: Int?
        /// Whether the volume goes with the server.
        public var deleteOnTermination: Bool

        /// Creates a block device.
        public init(volumeID: String, bootIndex: Int?, deleteOnTermination: Bool = false) {
            self.volumeID = volumeID
            self.bootIndex = bootIndex
            self.deleteOnTermination = deleteOnTermination
        }
    }

    /// A network attachment.
    public enum Network: Sendable, Hashable {
        /// A network by id (Nova creates a port).
        case network(id: String, fixedIP: String? = nil)
        /// An existing port.
        case port(id: String)
    }

    /// The name.
    public var name: String
    /// The flavor id.
    public var flavorID: String
    /// Disks, boot disk first.
    public var blockDevices: [BlockDevice]
    /// Networks (empty: `"none"`).
    public var networks: [Network]
    /// Security group names.
    public var securityGroups: [String]
    /// The key pair's name.
    public var keyName: String?
    /// The availability zone.
    public var availabilityZone: String?
    /// Metadata.
    public var metadata: [String: String]

    /// Creates a request.
    public init(
        name: String, flavorID: String, blockDevices: [BlockDevice], networks: [Network] = [],
        securityGroups: [String] = [], keyName: String? = nil, availabilityZone: String? = nil,
        metadata: [String: String] = [:]
    ) {
        self.name = name
        self.flavorID = flavorID
        self.blockDevices = blockDevices
        self.networks = networks
        self.securityGroups = securityGroups
        self.keyName = keyName
        self.availabilityZone = availabilityZone
        self.metadata = metadata
    }

    var body: [String: Any] {
        var server: [String: Any] = [
            "name": name, "flavorRef": flavorID, "imageRef": "",
            "block_device_mapping_v2": blockDevices.map { device -> [String: Any] in
                var mapping: [String: Any] = [
                    "uuid": device.volumeID, "source_type": "volume", "destination_type": "volume",
                    "delete_on_termination": device.deleteOnTermination,
                ]
                mapping["boot_index"] = device.bootIndex ?? -1
                return mapping
            },
            "metadata": metadata,
        ]
        if networks.isEmpty {
            server["networks"] = "none"
        } else {
            server["networks"] = networks.map { network -> [String: Any] in
                switch network {
                case .network(let id, let fixedIP):
                    var entry: [String: Any] = ["uuid": id]
                    if let fixedIP { entry["fixed_ip"] = fixedIP }
                    return entry
                case .port(let id): return ["port": id]
                }
            }
        }
        if !securityGroups.isEmpty { server["security_groups"] = securityGroups.map { ["name": $0] } }
        if let keyName { server["key_name"] = keyName }
        if let availabilityZone { server["availability_zone"] = availabilityZone }
        return ["server": server]
    }
}
