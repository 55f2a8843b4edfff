import Foundation
import Yams

/// A cloud definition (`samples/emulator/*.yaml`): projects, users, application credentials, flavors,
/// networks, key pairs and servers with their volumes and content. Applied once, to an empty state
/// directory; ids are derived from names, so the same seed always gives the same ids.
public struct EmulatorSeed: Sendable, Decodable {
    /// A project and its Cinder quotas.
    public struct Project: Sendable, Decodable {
        /// The name.
        public var name: String
        /// Quotas; defaults 50 volumes, 50 snapshots, 5000 size units.
        public var quota: Quota?
    }

    /// Cinder quotas (`-1` = unlimited).
    public struct Quota: Sendable, Decodable {
        /// Volumes.
        public var volumes: Int?
        /// Snapshots.
        public var snapshots: Int?
        /// Total size of volumes and snapshots.
        public var gigabytes: Int?
    }

    /// A user with a password and roles per project name.
    public struct User: Sendable, Decodable {
        /// The name.
        public var name: String
        /// The password.
        public var password: String
        /// Role names per project name.
        public var roles: [String: [String]]
        /// The project a token without scope is scoped to.
        public var defaultProject: String?
        /// Whether clouds.yaml uses this user (the first user with an `admin` role otherwise).
        public var cloudsYAML: Bool?

        enum CodingKeys: String, CodingKey {
            case name, password, roles
            case defaultProject = "default_project"
            case cloudsYAML = "clouds_yaml"
        }
    }

    /// An application credential of a user on a project.
    public struct ApplicationCredential: Sendable, Decodable {
        /// The id; derived from the name when absent.
        public var id: String?
        /// The name.
        public var name: String
        /// The user's name.
        public var user: String
        /// The project's name.
        public var project: String
        /// The secret.
        public var secret: String
        /// Roles; default all of the user's roles on the project.
        public var roles: [String]?
    }

    /// A flavor.
    public struct Flavor: Sendable, Decodable {
        /// The id; derived from the name when absent.
        public var id: String?
        /// The name.
        public var name: String
        /// vCPUs.
        public var vcpus: Int
        /// RAM in MiB.
        public var ram: Int
        /// Root disk in GiB.
        public var disk: Int
        /// Extra specs.
        public var extraSpecs: [String: String]?

        enum CodingKeys: String, CodingKey {
            case id, name, vcpus, ram, disk
            case extraSpecs = "extra_specs"
        }
    }

    /// A network.
    public struct Network: Sendable, Decodable {
        /// The name.
        public var name: String
    }

    /// A server and its volumes (the first is the root disk).
    public struct Server: Sendable, Decodable {
        /// The name.
        public var name: String
        /// The project's name.
        public var project: String
        /// The owning user's name; default the first user with a role on the project.
        public var user: String?
        /// The flavor's name.
        public var flavor: String
        /// Network names.
        public var networks: [String]?
        /// Security group names; default `default`.
        public var securityGroups: [String]?
        /// A key pair name.
        public var keyName: String?
        /// The availability zone; default `nova`.
        public var availabilityZone: String?
        /// Metadata.
        public var metadata: [String: String]?
        /// Whether this is a backup proxy: volumes attached to it appear under a device directory. The first
        /// proxy of the seed uses the emulator's device directory, each further one `<device directory>/<its
        /// name>` (its name must then be a plain path component other than `disk`).
        public var proxy: Bool?
        /// Nova's `max_disk_devices_to_attach` for this server.
        public var maxDiskDevices: Int?
        /// A task state that never ends (attach and detach answer 409).
        public var taskState: String?
        /// Whether the server is locked.
        public var locked: Bool?
        /// The volumes; the first is the boot volume.
        public var volumes: [Volume]?

        enum CodingKeys: String, CodingKey {
            case name, project, user, flavor, networks, metadata, proxy, locked, volumes
            case securityGroups = "security_groups"
            case keyName = "key_name"
            case availabilityZone = "availability_zone"
            case maxDiskDevices = "max_disk_devices"
            case taskState = "task_state"
        }
    }

    /// A volume, attached to its server or (at top level) free.
    public struct Volume: Sendable, Decodable {
        /// The name (with `unnamed`, only the key its id derives from).
        public var name: String
        /// Whether Cinder shows the volume without a name (operators' scripts often make such volumes).
        public var unnamed: Bool?
        /// The size in the emulator's unit (GiB, or MiB with `--size-unit mib`).
        public var size: Int
        /// The project's name (top-level volumes only; server volumes take the server's project).
        public var project: String?
        /// Metadata.
        public var metadata: [String: String]?
        /// What to write into it, in order.
        public var content: [ContentSegment]?
    }

    /// One piece of a volume's content, written at the current offset (then the offset moves on).
    /// Exactly one of `zero`, `random`, `text`, `filesystem` is given; lengths accept `K`, `M`, `G` suffixes.
    public struct ContentSegment: Sendable, Decodable {
        /// Skip this many bytes (they stay zero and sparse).
        public var zero: String?
        /// This many pseudo-random bytes from `seed`.
        public var random: String?
        /// The seed of `random`; default 1.
        public var seed: UInt64?
        /// This text, repeated to fill `length` (or once).
        public var text: String?
        /// The length of a `text` segment, or of a `filesystem` (default: to the end of the volume).
        public var length: String?
        /// A real filesystem made by `mkfs.<type>` (`ext4`, `ext3`, `ext2`, or any type whose mkfs is
        /// installed, e.g. `vfat`, `xfs`).
        public var filesystem: String?
        /// The filesystem's label.
        public var label: String?
        /// Files to put in an ext2/3/4 filesystem: path → text content (folders are created).
        public var files: [String: String]?
    }

    /// The region (default `RegionOne`).
    public var region: String?
    /// Projects.
    public var projects: [Project]
    /// Users.
    public var users: [User]
    /// Application credentials.
    public var applicationCredentials: [ApplicationCredential]?
    /// Flavors.
    public var flavors: [Flavor]?
    /// Networks.
    public var networks: [Network]?
    /// Key pair names.
    public var keypairs: [String]?
    /// Servers.
    public var servers: [Server]?
    /// Volumes attached to no server.
    public var volumes: [Volume]?

    enum CodingKeys: String, CodingKey {
        case region, projects, users, flavors, networks, keypairs, servers, volumes
        case applicationCredentials = "application_credentials"
    }

    /// Reads a seed file.
    public static func load(path: String) throws -> EmulatorSeed {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw EmulatorError.unreadableFile(path: path, what: "seed", underlying: error)
        }
        do {
            return try parse(yaml: text)
        } catch let error as EmulatorError {
            throw EmulatorError.invalidFile(path: path, what: "seed", reason: error.message)
        }
    }

    /// Parses seed YAML.
    public static func parse(yaml: String) throws -> EmulatorSeed {
        do {
            return try YAMLDecoder().decode(EmulatorSeed.self, from: yaml)
        } catch {
            throw EmulatorError.invalidFile(path: "<seed>", what: "seed", reason: "\(error)")
        }
    }

    /// A Keystone-style id for a seeded project.
    public static func projectID(_ name: String) -> String { Identifiers.stable("project", name) }
    /// A Keystone-style id for a seeded user.
    public static func userID(_ name: String) -> String { Identifiers.stable("user", name) }
    /// A UUID for a seeded server.
    public static func serverID(_ name: String) -> String { Identifiers.stableUUID("server", name) }
    /// A UUID for a seeded volume.
    public static func volumeID(_ name: String) -> String { Identifiers.stableUUID("volume", name) }
}

extension EmulatorSeed {
    /// The id of a seeded flavor without an explicit id.
    public static func flavorID(_ name: String) -> String { Identifiers.stableUUID("flavor", name) }
    /// The id of a seeded network.
    public static func networkID(_ name: String) -> String { Identifiers.stableUUID("network", name) }
}
