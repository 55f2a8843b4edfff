public import Foundation
public import OpenStackClient

/// How an emulator runs: where it keeps its state, where it listens, how fast things happen.
public struct EmulatorConfiguration: Sendable {
    /// The directory holding `cloud.json` (all records), `volumes/`, `snapshots/` and, by default, `dev/`.
    public var stateDirectory: String
    /// The directory under which attached volumes appear as `disk/by-id/virtio-<id[:20]>`;
    /// nil means `<stateDirectory>/dev`.
    public var deviceDirectory: String?
    /// The address to listen on.
    public var host: String
    /// The port to listen on; 0 picks a free one (read it from `RunningEmulator.port`).
    public var port: Int
    /// How long issued tokens live (Keystone `[token] expiration`, default 3600 s).
    public var tokenLifetime: TimeInterval
    /// How long each asynchronous step takes (creating → available, reserved → attaching → in-use, ...).
    public var transitionDelay: TimeInterval
    /// The unit of volume sizes: GiB as in Cinder, or MiB so tests can use small real files.
    public var sizeUnit: VolumeSizeUnit
    /// Whether the proxy's devices are real loop devices (`losetup`, root only) instead of symbolic links
    /// to the volume files.
    public var usesLoopDevices: Bool
    /// The region of every catalog endpoint; nil means the seed's `region`, else `RegionOne`.
    public var region: String?
    /// Injected faults; empty by default.
    public var faults: FaultPlan
    /// A real Keystone to use instead of the emulator's own (`serve --keystone URL`); nil by default.
    public var externalKeystone: ExternalKeystone?

    /// A configuration; every parameter except the state directory has a default.
    public init(
        stateDirectory: String, deviceDirectory: String? = nil, host: String = "127.0.0.1", port: Int = 0,
        tokenLifetime: TimeInterval = 3600, transitionDelay: TimeInterval = 0.5, sizeUnit: VolumeSizeUnit = .gibibyte,
        usesLoopDevices: Bool = false, region: String? = nil, faults: FaultPlan = FaultPlan(),
        externalKeystone: ExternalKeystone? = nil
    ) {
        self.stateDirectory = stateDirectory
        self.deviceDirectory = deviceDirectory
        self.host = host
        self.port = port
        self.tokenLifetime = tokenLifetime
        self.transitionDelay = transitionDelay
        self.sizeUnit = sizeUnit
        self.usesLoopDevices = usesLoopDevices
        self.region = region
        self.faults = faults
        self.externalKeystone = externalKeystone
    }

    /// The device directory in effect.
    public var effectiveDeviceDirectory: String { deviceDirectory ?? stateDirectory + "/dev" }
}

/// The unit the emulator reads Cinder's integer `size` in.
public struct VolumeSizeUnit: Sendable, Hashable, Codable {
    /// Bytes per size unit.
    public let bytes: Int64

    /// Cinder's unit: 1 GiB.
    public static let gibibyte = VolumeSizeUnit(bytes: 1 << 30)
    /// 1 MiB: for tests that want real but small volumes.
    public static let mebibyte = VolumeSizeUnit(bytes: 1 << 20)
}

/// A real Keystone in front of the emulator: it authenticates every client, and the emulator validates
/// the tokens of Nova and Cinder calls against it as keystonemiddleware does.
///
/// At start the emulator makes the seed's projects, users, role assignments and application
/// credentials exist there (creating what is missing and granting the seed's roles; existing projects and
/// users are not changed), adopts Keystone's project and user ids, and registers its compute, volumev3 and
/// block-storage endpoints in its region; at stop it puts the catalog back as it found it.
public struct ExternalKeystone: Sendable {
    /// The service account, with the external Keystone as its auth URL. It needs the `admin` role: it
    /// creates projects, users and endpoints and validates other users' tokens.
    public var service: CloudConfiguration
    /// How long a validated token is trusted without asking Keystone again (keystonemiddleware's
    /// `token_cache_time`); 0 asks every time, so a revoked token is refused at once.
    public var tokenCacheLifetime: TimeInterval

    /// A Keystone in front; the service account's auth URL names it.
    public init(service: CloudConfiguration, tokenCacheLifetime: TimeInterval = 30) {
        self.service = service
        self.tokenCacheLifetime = tokenCacheLifetime
    }

    /// Keystone's v3 URL, as clients use it.
    public var identityURL: String { service.identityURL }
}
