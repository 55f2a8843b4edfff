/// A path of the backup namespace, relative (no leading `/`): `@openstack/nova/server/<uuid>/<uuid>.conf`.
///
/// The same paths appear in every sink: below a job folder of a directory repository, as tar member
/// names, and (with a leading `/`) as Bacula file names.
public enum NamespacePath {
    /// Whether `path` is a relative path that stays inside its folder: no empty, `.` or `..` component,
    /// no leading `/`, no NUL.
    public static func isContained(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\0") else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.count <= PathSafeName.componentLimit
        }
    }
}

/// Where the three files of one volume backup go in the namespace.
public struct VolumeNamespacePaths: Sendable, Hashable {
    /// The path-safe volume name in the data file's name ("" for a volume without a name).
    public var volumeLabel: String
    /// `<folder>/<volume uuid>.bmp`.
    public var regions: String
    /// `<folder>/<volume uuid>.bmpsha`.
    public var digests: String
    /// `<folder>/<volume name>_<volume uuid>.bvmdk` (`<volume uuid>.bvmdk` for a volume with no name).
    public var data: String

    /// The paths in the order they are sent: regions, digests, data.
    public var all: [String] { [regions, digests, data] }
}

/// The layout of the backup namespace that every sink carries (the Bacula plugin's file names):
///
/// ```
/// @openstack/nova/server/<server uuid>_<server name>.name       the original name, UTF-8
/// @openstack/nova/server/<server uuid>/<server uuid>.conf       the server's configuration (JSON)
/// @openstack/nova/server/<server uuid>/<volume uuid>.bmp        regions of this backup
/// @openstack/nova/server/<server uuid>/<volume uuid>.bmpsha     digests of its blocks
/// @openstack/nova/server/<server uuid>/<volume name>_<volume uuid>.bvmdk   the blocks
/// @openstack/nova/flavor/<flavor name>                          each flavor used (JSON)
/// @openstack/cinder/volume/<volume uuid>_<volume name>.name     a volume attached to no server (<uuid>.name unnamed)
/// @openstack/cinder/volume/<volume uuid>/<volume uuid>.conf     its configuration (JSON)
/// @openstack/cinder/volume/<volume uuid>/<volume uuid>.bmp ...  its three files
/// @local/image/<volume id>.bmp ...                              `osbackup image` jobs
/// ```
public enum BackupNamespace {
    /// The root of the cloud namespace.
    public static let root = "@openstack"
    /// The folder of servers.
    public static let servers = "@openstack/nova/server"
    /// The folder of flavors.
    public static let flavors = "@openstack/nova/flavor"
    /// The folder of volumes attached to no server.
    public static let unattachedVolumes = "@openstack/cinder/volume"
    /// The folder of `osbackup image` jobs.
    public static let images = "@local/image"

    /// The `.name` file of a server.
    public static func serverNameFile(serverID: String, name: String) -> String {
        "\(servers)/\(serverID)_\(PathSafeName.make(name, reservedBytes: serverID.utf8.count + 6)).name"
    }

    /// The folder of a server's files.
    public static func serverFolder(serverID: String) -> String { "\(servers)/\(serverID)" }

    /// The `.conf` file of a server.
    public static func serverConfFile(serverID: String) -> String { "\(serverFolder(serverID: serverID))/\(serverID).conf" }

    /// The `.name` file of a volume attached to no server (`<uuid>.name`, empty, for a volume without a name).
    public static func volumeNameFile(volumeID: String, name: String) -> String {
        guard !name.isEmpty else { return "\(unattachedVolumes)/\(volumeID).name" }
        return "\(unattachedVolumes)/\(volumeID)_\(PathSafeName.make(name, reservedBytes: volumeID.utf8.count + 6)).name"
    }

    /// The folder of a volume attached to no server.
    public static func volumeFolder(volumeID: String) -> String { "\(unattachedVolumes)/\(volumeID)" }

    /// The `.conf` file of a volume attached to no server.
    public static func volumeConfFile(volumeID: String) -> String { "\(volumeFolder(volumeID: volumeID))/\(volumeID).conf" }

    /// The file of a flavor.
    public static func flavorFile(name: String) -> String { "\(flavors)/\(PathSafeName.make(name))" }

    /// The three files of a volume backup in `folder`; a nil or empty name leaves only the UUID.
    public static func volumeFiles(folder: String, volumeID: String, volumeName: String?) -> VolumeNamespacePaths {
        let label = volumeName.map { $0.isEmpty ? "" : PathSafeName.make($0, reservedBytes: volumeID.utf8.count + 7) } ?? ""
        let dataName = label.isEmpty ? "\(volumeID).bvmdk" : "\(label)_\(volumeID).bvmdk"
        return VolumeNamespacePaths(
            volumeLabel: label, regions: "\(folder)/\(volumeID).bmp", digests: "\(folder)/\(volumeID).bmpsha", data: "\(folder)/\(dataName)")
    }
}
