public import BlockDelta

import Foundation

/// The proxy's working directory of hash maps: for each volume, the map of its newest backup
/// (`<volume>.map`, compared by an Incremental) and the map of its newest Full (`<volume>.full.map`,
/// compared by a Differential).
///
/// A new map is written beside the old one (`<volume>.map.new`) and installed with `rename` only after the
/// backup it describes is stored, so a failed backup leaves the previous state untouched.
public struct VolumeStateStore: Sendable {
    /// The working directory.
    public let directory: String

    /// Opens (and creates if needed) the working directory.
    public init(directory: String) throws(BlockDeltaError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: directory, "cannot create the state directory: \(error.localizedDescription)")
        }
    }

    /// The map of the newest backup of `volumeID`.
    public func latestMapPath(volumeID: String) -> String { "\(directory)/\(volumeID).map" }
    /// The map of the newest Full of `volumeID`.
    public func fullMapPath(volumeID: String) -> String { "\(directory)/\(volumeID).full.map" }
    /// The lock a backup of `volumeID` holds, so two backups of one volume never race on its maps.
    public func lockPath(volumeID: String) -> String { "\(directory)/\(volumeID).lock" }
    /// Where a backup in progress writes its new map.
    public func pendingMapPath(volumeID: String) -> String { "\(directory)/\(volumeID).map.new" }

    /// The map at `path` if it exists and is sound; nil with the reason otherwise.
    public func loadMap(at path: String) -> (map: HashMapReader?, problem: String?) {
        guard FileManager.default.fileExists(atPath: path) else {
            return (nil, "no hash map from an earlier backup at \(path)")
        }
        do {
            return (try HashMapReader(path: path), nil)
        } catch {
            return (nil, "hash map unusable: \(error)")
        }
    }

    /// Installs the pending map of `volumeID` as its newest map (and, for a Full, as its Full map).
    public func installPendingMap(volumeID: String, level: BackupLevel) throws(BlockDeltaError) {
        let pending = pendingMapPath(volumeID: volumeID)
        if level == .full {
            // The Full map is a second name for the same inode: maps are never modified in place, only replaced.
            let staging = fullMapPath(volumeID: volumeID) + ".new"
            unlink(staging)
            guard link(pending, staging) == 0 else { throw .io("link to \(staging)", path: pending, errno: errno) }
            guard rename(staging, fullMapPath(volumeID: volumeID)) == 0 else {
                throw .io("rename to \(fullMapPath(volumeID: volumeID))", path: staging, errno: errno)
            }
        }
        guard rename(pending, latestMapPath(volumeID: volumeID)) == 0 else {
            throw .io("rename to \(latestMapPath(volumeID: volumeID))", path: pending, errno: errno)
        }
        try syncDirectory(directory)
    }

    /// Removes a pending map left by a backup that did not finish.
    public func discardPendingMap(volumeID: String) {
        unlink(pendingMapPath(volumeID: volumeID))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
