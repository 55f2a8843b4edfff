import BlockDelta

/// Where one volume's time went in a cloud backup: wall-clock seconds of each step of DESIGN §3.
///
/// "Waiting on OpenStack" (``openStackWaitSeconds``) is the time of the requests and status polling of the
/// snapshot, the temporary volume, the attachment (until the device shows on the proxy) and the cleanup;
/// ``scanSeconds`` is reading the device into the sink. Waiting for a free attach slot is neither: it is
/// the job's own `--parallel` limit, or Nova saying the proxy has no free disk slot. A step that did not
/// run (the volume failed before it) counts 0. The steps run one after the other, except the cleanup: it
/// starts once the device has been read, while the sink takes the volume's files (the end of the scan;
/// a stream copies them then). So the sum of the steps before the cleanup is at most the volume's
/// ``VolumeOutcome/seconds`` (the rest is local bookkeeping: journal writes, opening the device).
public struct VolumeTimings: Sendable, Codable, Hashable {
    /// Creating the snapshot and waiting for Cinder to say `available`.
    public let snapshotSeconds: Double
    /// Creating the temporary volume from the snapshot and waiting for `available`.
    public let temporaryVolumeSeconds: Double
    /// Waiting for a free attach slot of the proxy (no request in flight).
    public let attachSlotWaitSeconds: Double
    /// Asking Nova to attach, waiting for `in-use` and for the device to appear on the proxy.
    public let attachSeconds: Double
    /// Reading the device and storing its changed blocks into the sink (the scan), until the sink has taken
    /// the volume's files.
    public let scanSeconds: Double
    /// Detaching, waiting for `available`, deleting the temporary volume and the snapshot (from the end of
    /// the device's read, beside the files' hand-over to the sink).
    public let cleanupSeconds: Double
    /// Seconds waiting on OpenStack: snapshot + temporary volume + attach + cleanup.
    public let openStackWaitSeconds: Double

    /// Creates the timings; ``openStackWaitSeconds`` is the sum of the four OpenStack steps.
    public init(
        snapshotSeconds: Double = 0, temporaryVolumeSeconds: Double = 0, attachSlotWaitSeconds: Double = 0, attachSeconds: Double = 0,
        scanSeconds: Double = 0, cleanupSeconds: Double = 0
    ) {
        self.snapshotSeconds = snapshotSeconds
        self.temporaryVolumeSeconds = temporaryVolumeSeconds
        self.attachSlotWaitSeconds = attachSlotWaitSeconds
        self.attachSeconds = attachSeconds
        self.scanSeconds = scanSeconds
        self.cleanupSeconds = cleanupSeconds
        self.openStackWaitSeconds = snapshotSeconds + temporaryVolumeSeconds + attachSeconds + cleanupSeconds
    }
}

/// A cloud job's totals: its wall-clock phases, and the volumes' bytes and step times summed.
///
/// Volumes run in parallel (`--parallel`), so the sums over volumes (``openStackWaitSeconds``,
/// ``scanSeconds``, ``attachSlotWaitSeconds``) can exceed the wall-clock ``volumesSeconds``; their ratio
/// says where the volumes' time went, the wall-clock phases say where the job's went.
public struct CloudJobTotals: Sendable, Codable, Hashable {
    /// Wall-clock seconds of the whole job, from its start to the maps' install.
    public let seconds: Double
    /// Wall-clock seconds before the first volume: sweeping dead jobs' resources, finding the servers and
    /// volumes (Nova and Cinder listings), writing each server's `.name` and `.conf`.
    public let preparationSeconds: Double
    /// Wall-clock seconds of the volumes' phase (all volumes, in parallel).
    public let volumesSeconds: Double
    /// Wall-clock seconds after the last volume: the end-of-job sweep, the job manifest, the maps' install.
    public let finishSeconds: Double
    /// Bytes read from the devices, all volumes.
    public let bytesRead: UInt64
    /// Bytes of changed block data backed up (uncompressed), all volumes.
    public let dataBytes: UInt64
    /// Bytes of block data stored, all volumes.
    public let bytesStored: UInt64
    /// Seconds waiting on OpenStack, summed over the volumes (``VolumeTimings/openStackWaitSeconds``).
    public let openStackWaitSeconds: Double
    /// Seconds scanning, summed over the volumes.
    public let scanSeconds: Double
    /// Seconds waiting for a free attach slot, summed over the volumes.
    public let attachSlotWaitSeconds: Double

    /// Sums the volumes' bytes and step times; the wall-clock phases are the job's.
    public init(seconds: Double, preparationSeconds: Double, volumesSeconds: Double, finishSeconds: Double, volumes: [VolumeOutcome]) {
        self.seconds = seconds
        self.preparationSeconds = preparationSeconds
        self.volumesSeconds = volumesSeconds
        self.finishSeconds = finishSeconds
        bytesRead = volumes.reduce(0) { $0 + $1.bytesRead }
        dataBytes = volumes.reduce(0) { $0 + $1.dataBytes }
        bytesStored = volumes.reduce(0) { $0 + $1.bytesStored }
        openStackWaitSeconds = volumes.reduce(0) { $0 + $1.timings.openStackWaitSeconds }
        scanSeconds = volumes.reduce(0) { $0 + $1.timings.scanSeconds }
        attachSlotWaitSeconds = volumes.reduce(0) { $0 + $1.timings.attachSlotWaitSeconds }
    }
}

/// The steps of one volume's workflow that ``VolumePhaseClock`` times.
enum VolumePhase: Sendable, Hashable {
    case snapshot, temporaryVolume, attachSlotWait, attach, scan, cleanup
}

/// Adds up the wall-clock time of each step of one volume's workflow, from whichever task runs it.
final class VolumePhaseClock: Sendable {
    private let elapsed = LockedValue<[VolumePhase: Duration]>([:])

    /// Runs `body` and adds its wall-clock time to `phase`, whether it returns or throws.
    func time<Value, Failure: Error>(_ phase: VolumePhase, _ body: () async throws(Failure) -> Value) async throws(Failure) -> Value {
        let started = ContinuousClock.now
        defer { add(ContinuousClock.now - started, to: phase) }
        return try await body()
    }

    /// Adds `duration` to `phase`.
    func add(_ duration: Duration, to phase: VolumePhase) {
        elapsed.withLock { $0[phase, default: .zero] += duration }
    }

    /// The times so far.
    var timings: VolumeTimings {
        let elapsed = elapsed.withLock { $0 }
        func seconds(_ phase: VolumePhase) -> Double { (elapsed[phase] ?? .zero).inSeconds }
        return VolumeTimings(
            snapshotSeconds: seconds(.snapshot), temporaryVolumeSeconds: seconds(.temporaryVolume),
            attachSlotWaitSeconds: seconds(.attachSlotWait), attachSeconds: seconds(.attach), scanSeconds: seconds(.scan),
            cleanupSeconds: seconds(.cleanup))
    }
}

extension Duration {
    /// The duration in seconds.
    var inSeconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
