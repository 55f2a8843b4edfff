/// Which backup of which volume a file belongs to, and the volume's geometry at that backup.
///
/// Every osbackup binary file (hash map, region list, digest list, block data) starts with the same
/// 128-byte header that carries one descriptor, so that any single file says what it is and files that do
/// not belong together are caught before they are used.
public struct BackupDescriptor: Hashable, Sendable {
    /// The longest volume id the header can hold, in UTF-8 bytes.
    public static let maximumVolumeIDLength = 54

    /// The volume's size and block size.
    public var geometry: VolumeGeometry
    /// This backup.
    public var backupID: BackupID
    /// The backup this one is a delta against (nil for a Full).
    public var parentID: BackupID?
    /// The Full at the root of this backup's chain (equal to ``backupID`` for a Full).
    public var fullID: BackupID
    /// Full, Incremental or Differential.
    public var level: BackupLevel
    /// The volume's id (a Cinder UUID, or the id given to a local image).
    public var volumeID: String

    /// Creates a descriptor, checking that the volume id fits the header and that the ids agree with the level.
    public init(
        geometry: VolumeGeometry, backupID: BackupID, parentID: BackupID?, fullID: BackupID, level: BackupLevel,
        volumeID: String
    ) throws(BlockDeltaError) {
        guard !volumeID.isEmpty, volumeID.utf8.count <= Self.maximumVolumeIDLength,
            !volumeID.utf8.contains(0)
        else {
            throw .invalidArgument(
                "volume id '\(volumeID)' must be 1 to \(Self.maximumVolumeIDLength) UTF-8 bytes without NUL")
        }
        if level == .full {
            guard parentID == nil, fullID == backupID else {
                throw .invalidArgument("a Full backup has no parent and is its own chain root")
            }
        } else {
            guard parentID != nil else { throw .invalidArgument("a \(level) backup needs a parent backup") }
        }
        self.geometry = geometry
        self.backupID = backupID
        self.parentID = parentID
        self.fullID = fullID
        self.level = level
        self.volumeID = volumeID
    }
}
