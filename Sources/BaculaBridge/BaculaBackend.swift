public import BackupEngine
public import BlockDelta
public import Logging
public import OpenStackClient

import Foundation

/// `osbackup bacula-backend`: one Bacula job's backend, started by `openstack-fd.so`, speaking the protocol
/// of docs/bacula-protocol.md on its standard input and output (logs on standard error).
///
/// A backup runs the cloud job (``CloudBackupJob``) into a ``BaculaStreamSink``; an estimate lists what a
/// backup would send. Every failure ends the session with an `A` packet naming it; the plugin fails the
/// job with that text.
public struct BaculaBackend: Sendable {
    /// The protocol version this backend speaks.
    public static let protocolVersion = 1

    let reader: BackendPacketReader
    let writer: BackendPacketWriter
    let environment: [String: String]
    let logger: Logger

    /// A backend on `input` (from the plugin) and `output` (to the plugin).
    public init(input: Int32, output: Int32, environment: [String: String], logger: Logger) {
        reader = BackendPacketReader(descriptor: input)
        writer = BackendPacketWriter(descriptor: output)
        self.environment = environment
        self.logger = logger
    }

    /// Runs the session; returns the process exit status (0 the job's work was done, 1 it failed).
    public func run() async -> Int32 {
        do {
            let (job, parameters, command) = try opening()
            var logger = logger
            logger[metadataKey: "osb-bacula-job"] = "\(job.jobID)"
            switch command {
            case "BackupStart": try await backUp(job, parameters, logger: logger)
            case "EstimateStart": try await estimate(job, parameters, logger: logger)
            case "RestoreStart": try await restore(job, parameters, logger: logger)
            default:
                throw BackendProtocolError("unknown command '\(command)'", offset: 0)
            }
            return 0
        } catch {
            let message = (error as? BackupError)?.description ?? "\(error)"
            logger.error("Bacula job failed", metadata: ["osb-error": "\(message)"])
            try? writer.send(BackendPacket(.abort, text: String(message.prefix(4000))))
            return 1
        }
    }

    // MARK: Opening

    /// Handshake, `Job` block, `Params` block and the start command.
    private func opening() throws -> (BaculaJobInfo, PluginParameters, String) {
        let hello = try expectCommand()
        guard hello.hasPrefix("Hello openstack-fd ") else { throw BackendProtocolError("expected Hello, got '\(hello.prefix(80))'", offset: 0) }
        guard hello == "Hello openstack-fd \(Self.protocolVersion)" else {
            try writer.send(BackendPacket(.abort, text: "the plugin speaks '\(hello)', this osbackup speaks version \(Self.protocolVersion): install matching versions"))
            throw BackendProtocolError("protocol version mismatch: '\(hello)'", offset: 0)
        }
        try writer.send(BackendPacket(.command, text: "Hello osbackup \(Self.protocolVersion)"))
        guard try expectCommand() == "Job" else { throw BackendProtocolError("expected the Job block", offset: 0) }
        let job = try BaculaJobInfo(try commandsUntilEnd())
        guard try expectCommand() == "Params" else { throw BackendProtocolError("expected the Params block", offset: 0) }
        let words = try commandsUntilEnd().map { line -> (key: String, value: String) in
            guard let equals = line.firstIndex(of: "=") else { return (line, "yes") }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        }
        var parameters = try PluginParameters(words)
        var command = try expectCommand()
        var restoreOptions: [(key: String, value: String)] = []
        if command == "RestoreOptions" {
            // What the operator filled in bconsole's Plugin Options: it wins over the line and config=.
            restoreOptions = try RestoreOptionsForm.parse(try dataUntilEnd(limit: RestoreOptionsForm.maximumFilledSize, what: "RestoreOptions"))
            command = try expectCommand()
            guard command == "RestoreStart" else { throw BackendProtocolError("RestoreOptions before '\(command.prefix(40))', not RestoreStart", offset: 0) }
        }
        if let file = parameters.value("config") {
            parameters = try parameters.merging(optionsFile: file, command: command == "RestoreStart" ? "restore" : "backup")
        }
        if !restoreOptions.isEmpty {
            logger.info("restore options from bconsole", metadata: ["osb-options": "\(restoreOptions.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"])
            parameters = try parameters.overriding(with: restoreOptions)
        }
        try applyPriority(parameters)
        return (job, parameters, command)
    }

    /// `nice=` and `ionice=`: the backend's CPU and I/O priority, as `--nice` and `--ionice`.
    private func applyPriority(_ parameters: PluginParameters) throws {
        var nice: Int32?
        if let text = parameters.value("nice") {
            guard let value = Int32(text), (-20...19).contains(value) else {
                throw BackupError(.configuration, resource: "Plugin line", "nice=\(text) is not a niceness from -20 to 19")
            }
            nice = value
        }
        let io = try parameters.value("ionice").map { try ProcessPriority.parseIOClass($0) }
        try ProcessPriority(nice: nice, io: io).apply()
    }

    func expectCommand() throws -> String {
        guard let packet = try reader.next() else { throw BackendProtocolError("the plugin closed the stream", offset: 0) }
        guard packet.status == .command else { throw BackendProtocolError("expected a command, got a \(packet.status) packet", offset: 0) }
        return packet.text
    }

    /// The payload of the D packets up to the next F, as UTF-8 text of at most `limit` bytes.
    private func dataUntilEnd(limit: Int, what: String) throws -> String {
        var bytes: [UInt8] = []
        while true {
            guard let packet = try reader.next() else { throw BackendProtocolError("the plugin closed the stream", offset: 0) }
            if packet.status == .endOfData { break }
            guard packet.status == .data else { throw BackendProtocolError("expected the data of \(what), got a \(packet.status) packet", offset: 0) }
            guard bytes.count + packet.payload.count <= limit else { throw BackendProtocolError("\(what) is longer than \(limit) bytes", offset: 0) }
            bytes += packet.payload
        }
        guard let text = String(validating: bytes, as: UTF8.self), !text.contains("\0") else {
            throw BackendProtocolError("\(what) is not UTF-8 text", offset: 0)
        }
        return text
    }

    private func commandsUntilEnd() throws -> [String] {
        var lines: [String] = []
        while true {
            guard let packet = try reader.next() else { throw BackendProtocolError("the plugin closed the stream", offset: 0) }
            if packet.status == .endOfData { return lines }
            guard packet.status == .command else { throw BackendProtocolError("expected key=value commands, got a \(packet.status) packet", offset: 0) }
            guard lines.count < 10_000 else { throw BackendProtocolError("a block of more than 10 000 lines", offset: 0) }
            lines.append(packet.text)
        }
    }

    // MARK: Backup

    private func backUp(_ job: BaculaJobInfo, _ parameters: PluginParameters, logger: Logger) async throws {
        let level = job.backupLevel
        if level != .full && !job.accurate {
            throw BackupError(
                .configuration, resource: "Bacula job \(job.jobName)",
                "an \(level) backup through the plugin needs Accurate = yes in the Job resource (without it the Director restores stale data)",
                hint: "add `Accurate = yes` to the Job and run it again")
        }
        let selection = try parameters.selection()
        let parallel = try parameters.integer("parallel", default: 4)
        let limiter = try parameters.value("bwlimit").map { ReadRateLimiter(bytesPerSecond: try ReadRateLimiter.parse($0)) }
        let state = parameters.value("state") ?? "\(job.workingDirectory)/osbackup"
        let abortOnError = try parameters.flag("abort_on_error")
        let started = Date()
        let report: CloudBackupReport
        do {
            report = try await backUp(job, parameters, level: level, selection: selection, parallel: parallel, limiter: limiter, state: state,
                abortOnError: abortOnError, logger: logger)
        } catch {
            writeMetrics(parameters, job: job, state: state, JobMetrics(job: job.jobResourceName, started: started, ended: Date(), outcome: .failedBeforeVolumes))
            throw error
        }
        writeMetrics(parameters, job: job, state: state, JobMetrics(job: job.jobResourceName, started: started, ended: Date(), outcome: .ran(report)))
        try writer.send(BackendPacket(.command, text: "BYE"))
    }

    /// The cloud job of a backup, up to the summary (`BYE` is the caller's, after the metrics).
    private func backUp(
        _ job: BaculaJobInfo, _ parameters: PluginParameters, level: BackupLevel, selection: TargetSelection, parallel: Int,
        limiter: ReadRateLimiter?, state: String, abortOnError: Bool, logger: Logger
    ) async throws -> CloudBackupReport {
        try await withCloud(parameters) { configuration, cloud, transport in
            let proxyID = try await proxyServerID(parameters, configuration: configuration, transport: transport)
            try writer.send(BackendPacket(.command, text: "OK"))
            if level == .full {
                // The restore options form, stored by the catalog with the Full (bconsole's Plugin Options).
                try writer.send(
                    [BackendPacket(.command, text: "OBJECT:\(RestoreOptionsForm.objectName)"), BackendPacket(.data, Array(RestoreOptionsForm.formText.utf8)), BackendPacket(.endOfData)])
            }
            let replies = PluginReplies(reader: reader)
            let jobID = BackupID.generate()
            let sink = try BaculaStreamSink(
                writer: writer, replies: replies, spoolDirectory: "\(state)/spool", jobID: jobID, abortOnError: abortOnError, logger: logger)
            let report = try await withKeepAlive {
                try await CloudBackupJob.run(
                    request(
                        CloudBackupRequest(
                            selection: selection, level: level, stateDirectory: state, proxyServerID: proxyID,
                            devices: devices(parameters, configuration: configuration), parallel: parallel, readRateLimiter: limiter),
                        mapDirectory: mapDirectory(state: state, job: job)),
                    cloud: cloud, sink: sink, jobID: jobID, logger: logger)
            }
            for volume in report.volumes where !volume.saved {
                try writer.send(BackendPacket(.warning, text: "volume \(volume.volumeName ?? "") (\(volume.volumeID)) not saved: \(volume.error ?? "")"))
            }
            try writer.send(BackendPacket(.info, text: String(report.summaryTable().prefix(60_000))))
            return report
        }
    }

    /// `metrics_dir=DIR`: the job's figures in `DIR/osbackup-<Job>.prom` for node_exporter's textfile
    /// collector, after every backup (a failed one too). Not written is a warning in the job log.
    private func writeMetrics(_ parameters: PluginParameters, job: BaculaJobInfo, state: String, _ metrics: JobMetrics) {
        guard let directory = parameters.value("metrics_dir") else { return }
        let name = PathSafeName.make(job.jobResourceName)
        do {
            try metrics.write(to: "\(directory)/osbackup-\(name).prom", stateDirectory: state)
        } catch {
            logger.warning("metrics not written", metadata: ["osb-error": "\(error)"])
            try? writer.send(BackendPacket(.warning, text: "\(error)"))
        }
    }

    /// The hash maps of the chain this Bacula Job keeps in the catalog: `<state>/maps/<Job name>`. Two Jobs
    /// that save the same volume (two FileSets, two schedules) keep two chains; one set of maps would
    /// make each Job's Incremental build on the other's backups, which its catalog does not hold.
    func mapDirectory(state: String, job: BaculaJobInfo) -> String {
        "\(state)/maps/\(PathSafeName.make(job.jobResourceName))"
    }

    private func request(_ request: CloudBackupRequest, mapDirectory: String) -> CloudBackupRequest {
        var request = request
        request.mapDirectory = mapDirectory
        return request
    }

    // MARK: Estimate

    private func estimate(_ job: BaculaJobInfo, _ parameters: PluginParameters, logger: Logger) async throws {
        let selection = try parameters.selection()
        let state = parameters.value("state") ?? "\(job.workingDirectory)/osbackup"
        try await withCloud(parameters) { configuration, cloud, transport in
            let proxyID = try await proxyServerID(parameters, configuration: configuration, transport: transport)
            try writer.send(BackendPacket(.command, text: "OK"))
            let report = try await withKeepAlive {
                try await CloudEstimate.run(
                selection: selection, level: job.backupLevel, cloud: cloud, proxyServerID: proxyID,
                stateDirectory: mapDirectory(state: state, job: job), repository: nil)
            }
            let now = Int(Date().timeIntervalSince1970)
            for volume in report.volumes {
                let folder = volume.serverID.map(BackupNamespace.serverFolder) ?? BackupNamespace.volumeFolder(volumeID: volume.volumeID)
                let paths = BackupNamespace.volumeFiles(folder: folder, volumeID: volume.volumeID, volumeName: volume.volumeName)
                let kind = volume.level == "\(BackupLevel.full)" ? "full" : "delta"
                // The data file's size is not known before the scan: the volume's size bounds it.
                for (path, size) in [(paths.regions, 0), (paths.digests, 0), (paths.data, volume.bytesToRead)] {
                    try writer.send([
                        BackendPacket(.command, text: "FNAME:/\(path)"), BackendPacket(.command, text: "STAT:\(size) \(now) \(kind)"),
                        BackendPacket(.endOfData),
                    ])
                }
            }
            try writer.send(BackendPacket(.command, text: "END"))
            // The plugin answers an estimate's END with JobEnd at once; nothing is installed after one.
            let end = try expectCommand()
            guard end.hasPrefix("JobEnd:") else { throw BackendProtocolError("expected JobEnd, got '\(end.prefix(80))'", offset: 0) }
            try writer.send(BackendPacket(.command, text: "BYE"))
        }
    }

    // MARK: The cloud

    /// Runs `body` with the cloud the parameters name (`cloud=`, `clouds_yaml=`), its transport shut down after.
    func withCloud<Result: Sendable>(
        _ parameters: PluginParameters,
        configure: (CloudConfiguration) -> CloudConfiguration = { $0 },
        _ body: @Sendable (CloudConfiguration, CloudServices, OpenStackTransport) async throws -> Result
    ) async throws -> Result {
        var environment = environment
        if let path = parameters.value("clouds_yaml") { environment["OS_CLIENT_CONFIG_FILE"] = path }
        let configuration = configure(
            try CloudConfigurationLoader(environment: environment).load(overrides: CloudConfigurationOverrides(cloud: parameters.value("cloud"))))
        return try await OpenStackTransport.withTransport(
            caCertificatePath: configuration.caCertificatePath, verifyTLS: configuration.verifyTLS
        ) { transport in
            let session = KeystoneSession(configuration: configuration, transport: transport, logger: logger)
            let cloud = try await CloudServices.connect(session: session)
            return try await body(configuration, cloud, transport)
        }
    }

    func proxyServerID(
        _ parameters: PluginParameters, configuration: CloudConfiguration, transport: OpenStackTransport
    ) async throws -> String {
        try await ProxyIdentity.serverID(
            explicit: parameters.value("proxy_server"), option: "proxy_server= on the Plugin line", environment: environment,
            configuration: configuration, transport: transport, logger: logger)
    }

    func devices(_ parameters: PluginParameters, configuration: CloudConfiguration) throws -> DeviceLocator {
        ProxyIdentity.devices(
            explicit: parameters.value("device_directory"), environment: environment, configuration: configuration,
            timeout: .seconds(try parameters.integer("device_timeout", default: 120)))
    }

    /// Runs `body` while sending a keep-alive every 30 s, so the plugin's timeout measures silence, not work.
    func withKeepAlive<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        let writer = writer
        let keepAlive = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(30))
                if Task.isCancelled { break }
                try? writer.send(BackendPacket(.keepAlive))
            }
        }
        defer { keepAlive.cancel() }
        return try await body()
    }
}
