import Foundation
import Logging

/// The data side of the emulator: volume and snapshot files in the state directory and the proxies'
/// views of attached volumes under the device directory.
///
/// Layout: `<state>/volumes/<volume id>.img` and `<state>/snapshots/<snapshot id>.img` (sparse files),
/// `<proxy's device directory>/disk/by-id/virtio-<first 20 characters of the volume id>` (a symbolic link
/// to the volume file, or to a loop device over it). The first proxy's device directory is `<devdir>`,
/// each further proxy's `<devdir>/<its name>` (``ServerRecord/deviceDirectory(root:)``).
struct VolumeStorage: Sendable {
    let stateDirectory: String
    /// The device directory: the first proxy's, and the parent of the others'.
    let deviceDirectory: String
    let unit: VolumeSizeUnit
    let usesLoopDevices: Bool
    let logger: Logger

    /// The file holding volume `id`.
    func volumePath(_ id: String) -> String { "\(stateDirectory)/volumes/\(id).img" }
    /// The file holding snapshot `id`.
    func snapshotPath(_ id: String) -> String { "\(stateDirectory)/snapshots/\(id).img" }
    /// The link a proxy whose device directory is `directory` sees for volume `id`.
    static func deviceLinkPath(_ volumeID: String, in directory: String) -> String {
        "\(directory)/disk/by-id/virtio-\(volumeID.prefix(20))"
    }

    /// Creates the directories.
    func prepare() throws {
        for directory in ["\(stateDirectory)/volumes", "\(stateDirectory)/snapshots", "\(deviceDirectory)/disk/by-id"] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw EmulatorError.dataOperation(subject: directory, "cannot create the directory: \(error)")
            }
        }
        // cloud.json holds the seed's passwords (as Keystone's database would): owner only.
        chmod(stateDirectory, 0o700)
    }

    /// Creates an empty sparse volume file of `size` units.
    func createEmptyVolume(_ id: String, size: Int) throws {
        let path = volumePath(id)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw EmulatorError.dataOperation(subject: path, "cannot create the volume file")
        }
        try resize(path, size: size)
    }

    /// Sets the length of `path` to `size` units (sparse).
    func resize(_ path: String, size: Int) throws {
        guard truncate(path, off_t(Int64(size) * unit.bytes)) == 0 else {
            throw EmulatorError.dataOperation(subject: path, "cannot set the size: \(String(cString: strerror(errno)))")
        }
    }

    /// Copies `source` to `destination` as a point-in-time copy (reflink where the filesystem offers it,
    /// a sparse copy otherwise), then sets the copy's size to `size` units.
    func copy(_ source: String, to destination: String, size: Int) throws {
        try run("/bin/cp", ["--reflink=auto", "--sparse=always", source, destination], subject: destination)
        try resize(destination, size: size)
    }

    /// Removes a data file; a missing file is fine.
    func remove(_ path: String) {
        do {
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        } catch {
            logger.warning("cannot remove data file", metadata: ["osb-path": "\(path)", "osb-error": "\(error)"])
        }
    }

    /// Makes volume `id` appear to the proxy whose device directory is `directory`; returns the loop device
    /// made, if any.
    func exposeDevice(_ volumeID: String, in directory: String) throws -> String? {
        let link = Self.deviceLinkPath(volumeID, in: directory)
        do {
            try FileManager.default.createDirectory(atPath: "\(directory)/disk/by-id", withIntermediateDirectories: true)
        } catch {
            throw EmulatorError.dataOperation(subject: "\(directory)/disk/by-id", "cannot create the proxy's device directory: \(error)")
        }
        var target = volumePath(volumeID)
        var loop: String?
        if usesLoopDevices {
            let output = try run(losetup, ["--find", "--show", target], subject: target)
            loop = output.trimmingCharacters(in: .whitespacesAndNewlines)
            target = loop!
        }
        try? FileManager.default.removeItem(atPath: link)
        do {
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        } catch {
            if let loop { _ = try? run(losetup, ["--detach", loop], subject: loop) }
            throw EmulatorError.dataOperation(subject: link, "cannot create the device link: \(error)")
        }
        logger.debug("device appeared", metadata: ["osb-volume": "\(volumeID)", "osb-device": "\(link)"])
        return loop
    }

    /// Removes the device for volume `id` from the proxy whose device directory is `directory` (nil: the
    /// server is no proxy, so there is no link) and detaches its loop device.
    func withdrawDevice(_ volumeID: String, in directory: String?, loopDevice: String?) {
        if let directory { try? FileManager.default.removeItem(atPath: Self.deviceLinkPath(volumeID, in: directory)) }
        if let loopDevice {
            do {
                _ = try run(losetup, ["--detach", loopDevice], subject: loopDevice)
            } catch {
                logger.warning("cannot detach loop device", metadata: ["osb-device": "\(loopDevice)", "osb-error": "\(error)"])
            }
        }
    }

    private var losetup: String { ExternalCommand.find("losetup") ?? "/sbin/losetup" }

    @discardableResult
    private func run(_ executable: String, _ arguments: [String], subject: String) throws -> String {
        try ExternalCommand.run(executable, arguments, subject: subject)
    }
}
