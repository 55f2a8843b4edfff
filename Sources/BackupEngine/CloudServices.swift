import Logging
public import OpenStackClient

/// The cloud as a job sees it: the Keystone session and the Nova and Cinder clients, connected once.
public struct CloudServices: Sendable {
    /// The session (renews its token by itself).
    public let session: KeystoneSession
    /// Nova.
    public let compute: ComputeClient
    /// Cinder.
    public let blockStorage: BlockStorageClient
    /// The project the token is scoped to: temporary resources are made there.
    public let projectID: String?

    /// Authenticates and negotiates both services' microversions.
    public static func connect(session: KeystoneSession, waitPolicy: StatusWaitPolicy = .init()) async throws(OpenStackError) -> CloudServices {
        let token = try await session.token()
        let compute = try await ComputeClient.connect(session: session)
        let blockStorage = try await BlockStorageClient.connect(session: session, waitPolicy: waitPolicy)
        return CloudServices(session: session, compute: compute, blockStorage: blockStorage, projectID: token.projectID)
    }
}

/// Finds the block device of a volume attached to the proxy, by the serial the hypervisor gives it,
/// never by the `device` Nova returns (DESIGN §3).
public struct DeviceLocator: Sendable {
    /// The device folder (`/dev`; the emulator's `STATE/dev`).
    public var deviceDirectory: String
    /// How long to wait for the device after Cinder says `in-use`.
    public var timeout: Duration

    /// Creates a locator.
    public init(deviceDirectory: String = "/dev", timeout: Duration = .seconds(120)) {
        self.deviceDirectory = deviceDirectory
        self.timeout = timeout
    }

    /// The paths a volume may appear at: virtio's 20-character serial, the QEMU SCSI serial, the full id.
    public func candidates(volumeID: String) -> [String] {
        let byID = "\(deviceDirectory)/disk/by-id"
        let short = String(volumeID.prefix(20))
        return [
            "\(byID)/virtio-\(short)", "\(byID)/scsi-0QEMU_QEMU_HARDDISK_\(short)", "\(byID)/scsi-0QEMU_QEMU_HARDDISK_\(volumeID)",
            "\(byID)/virtio-\(volumeID)",
        ]
    }

    /// Polls with back-off until one candidate exists; a timeout error names them all.
    public func waitForDevice(volumeID: String) async throws(BackupError) -> String {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var interval = Duration.milliseconds(50)
        while true {
            if let found = candidates(volumeID: volumeID).first(where: { access($0, F_OK) == 0 }) { return found }
            guard clock.now + interval < deadline else {
                throw BackupError(
                    .timeout, resource: "volume \(volumeID)",
                    "no device appeared on the proxy within \(timeout) (looked for \(candidates(volumeID: volumeID).joined(separator: ", ")))",
                    hint: "check udev on the proxy and --device-directory; the volume is detached and deleted")
            }
            do {
                try await Task.sleep(for: interval)
            } catch {
                throw BackupError(.cancelled, resource: "volume \(volumeID)", "cancelled")
            }
            interval = min(interval * 2, .seconds(2))
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
