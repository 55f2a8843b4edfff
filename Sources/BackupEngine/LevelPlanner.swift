public import BlockDelta
public import Logging

/// The decision of what one backup of a volume compares against: the level actually taken, the map to
/// compare with, and why a requested Incremental or Differential became a Full.
public struct LevelPlan: Sendable {
    /// The level that will be taken.
    public var level: BackupLevel
    /// The map to compare with (nil for a Full).
    public var reference: HashMapReader?
    /// The parent backup (nil for a Full).
    public var parentID: BackupID?
    /// The block size to cut the volume into.
    public var blockSize: Int
    /// Why the level differs from the one asked for, when it does.
    public var fallbackReason: String?

    /// The Full at the root of the chain, given this backup's own id.
    public func fullID(for backupID: BackupID) -> BackupID {
        reference?.descriptor.fullID ?? backupID
    }
}

/// Chooses the level and the reference map of a backup from the working-dir state.
///
/// The rules: a Full is taken when asked for; when no sound map exists (missing or corrupt); when the
/// block size changes; when the volume shrank; or when the parent backup is no longer stored. A volume
/// that grew keeps its level: the new blocks have no reference and are sent as changed.
public enum LevelPlanner {
    /// Plans the backup of `volumeID`, `volumeSize` bytes now, at `requested` level.
    ///
    /// - Parameters:
    ///   - requestedBlockSize: the block size asked for, or nil to keep the one of the existing maps
    ///     (and use ``VolumeGeometry/defaultBlockSize`` for a first Full).
    ///   - isStored: whether a backup is still in the repository, so an Incremental never builds on a
    ///     backup that cannot be restored.
    public static func plan(
        volumeID: String, volumeSize: UInt64, requested: BackupLevel, requestedBlockSize: Int?,
        state: VolumeStateStore, isStored: (BackupID) -> Bool, logger: Logger
    ) -> LevelPlan {
        let fallbackBlockSize = requestedBlockSize ?? VolumeGeometry.defaultBlockSize
        func full(_ reason: String?, blockSize: Int = fallbackBlockSize) -> LevelPlan {
            if let reason {
                logger.notice(
                    "taking a Full backup instead of \(requested)",
                    metadata: ["osb-volume": "\(volumeID)", "osb-reason": "\(reason)"])
            }
            return LevelPlan(level: .full, reference: nil, parentID: nil, blockSize: blockSize, fallbackReason: reason)
        }
        guard requested != .full else { return full(nil) }
        let mapPath = requested == .incremental ? state.latestMapPath(volumeID: volumeID) : state.fullMapPath(volumeID: volumeID)
        let (loaded, problem) = state.loadMap(at: mapPath)
        guard let map = loaded else { return full(problem ?? "no usable hash map") }
        let geometry = map.descriptor.geometry
        if let requestedBlockSize, requestedBlockSize != geometry.blockSize {
            return full("block size changes from \(geometry.blockSize) to \(requestedBlockSize) bytes")
        }
        guard map.descriptor.volumeID == volumeID else {
            return full("hash map \(mapPath) belongs to volume \(map.descriptor.volumeID)", blockSize: geometry.blockSize)
        }
        if volumeSize < geometry.volumeSize {
            return full(
                "volume shrank from \(geometry.volumeSize) to \(volumeSize) bytes", blockSize: geometry.blockSize)
        }
        let parent = map.descriptor.backupID
        guard isStored(parent) else {
            return full("parent backup \(parent) is no longer stored", blockSize: geometry.blockSize)
        }
        if volumeSize > geometry.volumeSize {
            logger.notice(
                "volume grew; its new blocks are sent as changed",
                metadata: [
                    "osb-volume": "\(volumeID)", "osb-old-size": "\(geometry.volumeSize)", "osb-new-size": "\(volumeSize)",
                ])
        }
        return LevelPlan(level: requested, reference: map, parentID: parent, blockSize: geometry.blockSize, fallbackReason: nil)
    }
}
