import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

// The cloud, the job runner and the debris check that the cloud backup and restore tests share.

/// A small cloud (MiB sizes): the proxy in `admin`, two tenant servers with awkward names, a loose volume.
let cloudSeed = """
    projects:
      - name: admin
      - name: tenant
        quota: {volumes: 30, snapshots: 30, gigabytes: 1000}
    users:
      - name: admin
        password: admin-secret
        roles: {admin: [admin], tenant: [admin]}
        default_project: admin
        clouds_yaml: true
    flavors:
      - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
    networks:
      - {name: private}
    servers:
      - name: backup-proxy
        project: admin
        flavor: m1.small
        proxy: true
        max_disk_devices: 2
        volumes:
          - {name: proxy-root, size: 4}
      - name: "web/1 ..\\u202E\\nevil"
        project: tenant
        flavor: m1.small
        networks: [private]
        volumes:
          - name: "root/../x"
            size: 8
            content: [{text: "root of web\\n", length: 64K}, {zero: 1M}, {random: 512K, seed: 7}]
          - name: web-data
            size: 4
            content: [{random: 256K, seed: 8}]
      - name: db-1
        project: tenant
        flavor: m1.small
        volumes:
          - name: db-1-root
            size: 4
            content: [{random: 1M, seed: 9}]
    volumes:
      - name: loose
        project: tenant
        size: 2
        content: [{text: "loose volume\\n", length: 4K}]
    """

/// Runs `body` with the emulator up, a connected admin client and a state/repository folder.
func withCloudJob(
    seed seedText: String = cloudSeed, faults: FaultPlan = FaultPlan(), transitionDelay: TimeInterval = 0.02, usesLoopDevices: Bool = false,
    waitTimeout: Duration = .seconds(30), retryPolicy: RetryPolicy = .init(), emulatorLog: CapturingLogHandler? = nil,
    _ body: (RunningEmulator, CloudServices, String) async throws -> Void
) async throws {
    try await withTemporaryDirectory { directory in
        let configuration = EmulatorConfiguration(
            stateDirectory: "\(directory)/cloud", transitionDelay: transitionDelay, sizeUnit: .mebibyte, usesLoopDevices: usesLoopDevices,
            faults: faults)
        let seed = try EmulatorSeed.parse(yaml: seedText)
        var quiet = Logger(label: "osbackup.cloud.test")
        quiet.logLevel = .warning
        let emulatorLogger = emulatorLog.map { capture in Logger(label: "osbackup.emulator.test") { _ in ForwardingLogHandler(capture: capture) } } ?? quiet
        try await withRunningEmulator(configuration: configuration, seed: seed, logger: emulatorLogger) { running in
            try await OpenStackTransport.withTransport(retryPolicy: retryPolicy) { transport in
                let services = try await connectAdmin(running, transport: transport, waitTimeout: waitTimeout, logger: quiet)
                try await body(running, services, directory)
            }
        }
    }
}

/// Asserts that the cloud holds no osbackup resource and nothing of osbackup attached to the proxy.
func expectNoDebris(_ running: RunningEmulator, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inventory = try running.inventory()
    #expect(inventory.snapshots.isEmpty, "snapshots left: \(inventory.snapshots)", sourceLocation: sourceLocation)
    let temporary = inventory.volumes.filter { $0.metadata[CloudTags.job] != nil || ($0.name ?? "").hasPrefix("osbackup-") }
    #expect(temporary.isEmpty, "temporary volumes left: \(temporary)", sourceLocation: sourceLocation)
    let proxyID = EmulatorSeed.serverID("backup-proxy")
    let proxyAttachments = inventory.attachments.filter { $0.serverID == proxyID && $0.volumeID != EmulatorSeed.volumeID("proxy-root") }
    #expect(proxyAttachments.isEmpty, "left attached to the proxy: \(proxyAttachments)", sourceLocation: sourceLocation)
}

func request(
    _ directory: String, _ running: RunningEmulator, level: BackupLevel, selection: TargetSelection = .init(unattachedVolumes: true, allProjects: true),
    parallel: Int = 4, deviceTimeout: Duration = .seconds(10)
) -> CloudBackupRequest {
    CloudBackupRequest(
        selection: selection, level: level, stateDirectory: "\(directory)/state", proxyServerID: EmulatorSeed.serverID("backup-proxy"),
        devices: DeviceLocator(deviceDirectory: running.deviceDirectory, timeout: deviceTimeout), parallel: parallel,
        parallelism: ParallelIOConfiguration(chunkSize: 1 << 20, workerCount: 1))
}

func runJob(_ request: CloudBackupRequest, _ cloud: CloudServices, repository: String) async throws -> CloudBackupReport {
    let jobID = BackupID.generate()
    let sink = try DirectorySink(repository: BackupRepository(directory: repository, create: true), jobID: jobID)
    return try await CloudBackupJob.run(request, cloud: cloud, sink: sink, jobID: jobID, logger: testLogger)
}

/// The seed's admin connected to the emulator, scoped to the `admin` project or to `projectID`.
func connectAdmin(
    _ running: RunningEmulator, transport: OpenStackTransport, projectID: String? = nil, waitTimeout: Duration = .seconds(30),
    logger: Logger
) async throws -> CloudServices {
    let cloud = CloudConfiguration(
        authURL: running.authURL,
        credentials: .password(
            user: UserReference(name: "admin", domainName: "Default"), password: Secret("admin-secret"),
            project: ProjectReference(name: "admin", domainName: "Default")),
        regionName: running.region)
    let scoped = try #require(projectID.map { cloud.scoped(toProjectID: $0) } ?? cloud)
    let session = KeystoneSession(configuration: scoped, transport: transport, logger: logger)
    return try await CloudServices.connect(
        session: session, waitPolicy: StatusWaitPolicy(timeout: waitTimeout, initialInterval: .milliseconds(20)))
}

/// A value-semantic handler in front of a shared capture: the emulator lowers its HTTP server's copy of the
/// logger to `critical`, which on the capture itself (a class) would silence every copy.
private struct ForwardingLogHandler: LogHandler {
    let capture: CapturingLogHandler
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.metadata = metadata.merging(event.metadata ?? [:]) { $1 }
        capture.log(event: event)
    }
}

/// Writes `bytes` into the emulator's volume `volumeID` at `offset`, as a server writing to its disk would.
func change(_ running: RunningEmulator, volumeID: String, at offset: UInt64, _ bytes: Data) throws {
    let handle = try #require(FileHandle(forWritingAtPath: running.volumeFile(volumeID: volumeID)))
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: bytes)
    try handle.close()
}
