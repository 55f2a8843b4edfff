import Foundation
import Logging

/// The emulated cloud: every record, the request dispatch, the scheduler of asynchronous status
/// changes, and persistence. One actor, so each API call sees and leaves a consistent state; it runs on
/// a thread of its own (``ThreadExecutor``), as its volume copies and `losetup` calls block.
actor CloudState {
    private let executor = ThreadExecutor(name: "osb-emulator")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    var records: CloudRecords
    let configuration: EmulatorConfiguration
    let storage: VolumeStorage
    let logger: Logger
    /// `http://127.0.0.1:PORT`, set once the server is bound.
    var baseURL: String = "http://127.0.0.1"
    var faultGenerator: FaultGenerator
    private let statePath: String
    /// Requests answered since this start (for `crash_after_requests`).
    private var requestsSinceStart = 0

    /// Loads the state from `<state>/cloud.json`, or builds it from `seed` when there is none yet.
    init(configuration: EmulatorConfiguration, seed: EmulatorSeed?, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.storage = VolumeStorage(
            stateDirectory: configuration.stateDirectory, deviceDirectory: configuration.effectiveDeviceDirectory,
            unit: configuration.sizeUnit, usesLoopDevices: configuration.usesLoopDevices, logger: logger)
        self.statePath = configuration.stateDirectory + "/" + StateFile.name
        self.faultGenerator = FaultGenerator(seed: configuration.faults.seed)
        try storage.prepare()
        if let saved = try StateFile.read(stateDirectory: configuration.stateDirectory) {
            records = saved
            faultGenerator = FaultGenerator(seed: configuration.faults.seed &+ UInt64(saved.sequence))
        } else {
            records = CloudRecords()
            if let seed {
                try seed.apply(to: &records, storage: storage)
            }
            try StateFile.write(records, to: statePath)
        }
        seedRegion = records.region
    }

    deinit { executor.shutdown() }

    /// The region of the catalog's endpoints: the configured one, else the seed's, else `RegionOne`.
    nonisolated var region: String { configuration.region ?? seedRegion ?? "RegionOne" }
    private nonisolated let seedRegion: String?

    /// Records where the server listens (the catalog and links are built from it).
    func setBaseURL(_ url: String) { baseURL = url }

    /// Saves the state (after every change).
    func save() {
        do {
            try StateFile.write(records, to: statePath)
        } catch {
            logger.error("cannot save state", metadata: ["osb-error": "\(error)"])
        }
    }

    /// Answers one request, with the latency a fault rule adds.
    func handle(_ request: EmulatorRequest) -> (EmulatorResponse, latency: TimeInterval) {
        requestsSinceStart += 1
        if requestsSinceStart == configuration.faults.crashAfterRequests {
            logger.critical(
                "injected crash: the process dies now without answering or cleaning up",
                metadata: ["osb-request-id": "\(request.requestID)", "osb-path": "\(request.path)"])
            _exit(70)
        }
        records.sequence += 1
        var latency: TimeInterval = 0
        if let rule = configuration.faults.rules.first(where: { $0.matches(request) }) {
            latency = Double(rule.latencyMilliseconds) / 1000
            if rule.rate > 0, faultGenerator.nextUnit() < rule.rate {
                logger.info(
                    "injected fault",
                    metadata: ["osb-request-id": "\(request.requestID)", "osb-path": "\(request.path)", "osb-status": "\(rule.status)"])
                return (rule.failure().adding("x-openstack-request-id", request.requestID), latency)
            }
        }
        tick(now: Date())
        var response: EmulatorResponse
        do {
            response = try route(request)
        } catch let rejection as ServiceRejection {
            response = rejection.response
        } catch {
            response = ServiceFault.response(500, "Unexpected API Error: \(error)")
        }
        if request.method != "GET" && request.method != "HEAD" { save() }
        response.headers.append(("x-openstack-request-id", request.requestID))
        logger.debug(
            "request",
            metadata: [
                "osb-method": "\(request.method)", "osb-path": "\(request.path)", "osb-status": "\(response.status)",
                "osb-query": "\(request.query.map { "\($0.0)=\($0.1)" }.joined(separator: "&"))",
                "osb-request-id": "\(request.requestID)",
            ])
        return (response, latency)
    }

    private func route(_ request: EmulatorRequest) throws -> EmulatorResponse {
        let segments = request.segments
        switch segments.first {
        case nil, "v3":
            return try identity(request, rest: Array(segments.dropFirst()), isRoot: segments.isEmpty)
        case "compute":
            return try compute(request, rest: Array(segments.dropFirst()))
        case "volume":
            return try blockStorage(request, rest: Array(segments.dropFirst()))
        default:
            return ServiceFault.response(404, "The resource could not be found.")
        }
    }

    // MARK: Scheduler

    /// Applies every pending transition whose time has come; saves when something changed.
    func tick(now: Date) {
        var changed = false
        let faults = configuration.faults
        for index in records.volumes.indices.reversed() {
            guard index < records.volumes.count else { continue }
            if let pending = records.volumes[index].pending, pending.due <= now,
                !faults.isStuck("volume", records.volumes[index].status)
            {
                records.volumes[index].pending = nil
                completeVolumeTransition(at: index, to: pending.status, now: now)
                changed = true
            }
        }
        for index in records.volumes.indices {
            if var attachment = records.volumes[index].attachment, let due = attachment.deviceDue, due <= now,
                records.volumes[index].status == "in-use"
            {
                attachment.deviceDue = nil
                exposeDevice(volumeIndex: index, attachment: &attachment)
                records.volumes[index].attachment = attachment
                changed = true
            }
        }
        for index in records.snapshots.indices.reversed() {
            guard index < records.snapshots.count else { continue }
            if let pending = records.snapshots[index].pending, pending.due <= now,
                !faults.isStuck("snapshot", records.snapshots[index].status)
            {
                records.snapshots[index].pending = nil
                if pending.status == "deleted" {
                    storage.remove(storage.snapshotPath(records.snapshots[index].id))
                    records.snapshots.remove(at: index)
                } else {
                    records.snapshots[index].status = pending.status
                    records.snapshots[index].updatedAt = now
                }
                changed = true
            }
        }
        for index in records.servers.indices {
            if let pending = records.servers[index].pending, pending.due <= now,
                !faults.isStuck("server", records.servers[index].status)
            {
                records.servers[index].pending = nil
                records.servers[index].status = pending.status
                records.servers[index].vmState = pending.status == "ACTIVE" ? "active" : pending.status.lowercased()
                records.servers[index].taskState = nil
                records.servers[index].updatedAt = now
                changed = true
            }
        }
        if changed { save() }
    }

    /// When the next step of an asynchronous change is due.
    func due(_ now: Date = Date()) -> Date { now.addingTimeInterval(configuration.transitionDelay) }

    /// Detaches every loop device this emulator made (on shutdown), leaving the records as they are.
    func releaseDevices() {
        for index in records.volumes.indices {
            guard var attachment = records.volumes[index].attachment, attachment.devicePresent else { continue }
            withdrawDevice(volumeID: records.volumes[index].id, attachment: attachment)
            attachment.loopDevice = nil
            attachment.devicePresent = false
            attachment.deviceDue = Date()
            records.volumes[index].attachment = attachment
        }
        save()
    }

    /// Re-creates the proxies' devices after a restart, each in its own proxy's device directory.
    func restoreDevices() {
        for index in records.volumes.indices {
            guard var attachment = records.volumes[index].attachment, records.volumes[index].status == "in-use",
                proxyServer(attachment.serverID) != nil, !attachment.devicePresent
            else { continue }
            attachment.deviceDue = nil
            exposeDevice(volumeIndex: index, attachment: &attachment)
            records.volumes[index].attachment = attachment
        }
        save()
    }

    func proxyServer(_ id: String) -> ServerRecord? {
        records.servers.first { $0.id == id && $0.isProxy }
    }

    /// Makes an attached volume appear in its server's device directory, when that server is a proxy.
    func exposeDevice(volumeIndex: Int, attachment: inout AttachmentRecord) {
        guard let directory = proxyServer(attachment.serverID)?.deviceDirectory(root: storage.deviceDirectory) else { return }
        do {
            attachment.loopDevice = try storage.exposeDevice(records.volumes[volumeIndex].id, in: directory)
            attachment.devicePresent = true
        } catch {
            logger.error("cannot expose device", metadata: ["osb-volume": "\(records.volumes[volumeIndex].id)", "osb-error": "\(error)"])
        }
    }

    /// Removes an attached volume's device from its server's device directory (if that server is a
    /// proxy) and detaches its loop device.
    func withdrawDevice(volumeID: String, attachment: AttachmentRecord) {
        let directory = proxyServer(attachment.serverID)?.deviceDirectory(root: storage.deviceDirectory)
        storage.withdrawDevice(volumeID, in: directory, loopDevice: attachment.loopDevice)
    }
}
