import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation
import Logging
import OpenStackClient

/// `osbackup backup`: servers and volumes through the cloud into a repository.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up servers and volumes through the cloud; prints the job id as the last line.",
        discussion: """
            Exit 0 all saved, 1 failed, 2 usage or configuration, 3 some volumes failed (the others are saved and restorable). \
            With --to - the job is a pax tar stream on standard output (volume data is spooled under STATE/spool first) \
            and the job id and the --json report go to standard error.
            """)

    @OptionGroup var cloud: CloudOptions
    @OptionGroup var proxy: ProxyOptions

    @OptionGroup var targets: SelectionOptions

    @Option(help: "Repository folder (created if missing), or - for a pax tar stream on standard output.")
    var to: String

    @Option(help: "full, incremental or differential (per volume: a Full when its map is unusable, with the reason).")
    var level: String = "incremental"

    @Option(help: "Volumes attached to the proxy at once (lowered when Nova says the proxy has no free disk slot).")
    var parallel: Int = 4

    @Option(help: "Cap on the job's read rate over all volumes, bytes per second with K, M, G (powers of 1024), e.g. 200M.")
    var bwlimit: String?

    @Option(help: "CPU niceness of the job, -20 (highest) to 19 (lowest), as nice(1).")
    var nice: Int32?

    @Option(help: "I/O class of the job: idle, best-effort[:0-7] or realtime[:0-7], as ionice(1).")
    var ionice: String?

    @Option(
        help: ArgumentHelp(
            "How a repository stores block data: none, zstd or zstd:LEVEL (default: \(DataEncoding.directoryDefault)).",
            discussion: "A tar stream (--to -) carries raw data: compress the stream itself (| zstd)."))
    var compression: String?

    @Flag(
        inversion: .prefixedNo,
        help: "Read the attached volumes with O_DIRECT, bypassing the proxy's page cache (default: on, for block devices).")
    var directIO: Bool?

    @Flag(help: "Print the job report as JSON on standard output.")
    var json = false

    @Option(help: "After the job, failed or not, write its figures as Prometheus text to this file (a *.prom file in node_exporter's --collector.textfile.directory).")
    var metricsFile: String?

    @Option(help: "The job label of those metrics (default: the file's name without .prom).")
    var metricsJob: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let level = try parseLevel(level)
        let streams = to == "-"
        if streams {
            guard isatty(STDOUT_FILENO) == 0 else {
                throw ValidationError("--to - writes a tar stream to standard output, which is a terminal: redirect it to a file or a pipe")
            }
            // A reader that goes away must be a clear error (EPIPE), not a silent death by SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
        }
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        let dataEncoding: DataEncoding
        do {
            dataEncoding = try DataEncoding(parsing: compression ?? "\(DataEncoding.directoryDefault)")
        } catch {
            throw ValidationError(error.description)
        }
        if streams, let compression, dataEncoding != .raw {
            throw ValidationError(
                "--compression \(compression): a tar stream (--to -) carries raw block data; compress the stream instead (| zstd)")
        }
        let directIO: DirectIOMode = self.directIO.map { $0 ? .always : .never } ?? .automatic
        let selection = try targets.selection()
        let limiter = try bwlimit.map { ReadRateLimiter(bytesPerSecond: try ReadRateLimiter.parse($0)) }
        if let nice, !(-20...19).contains(nice) { throw ValidationError("--nice must be -20 to 19") }
        try ProcessPriority(nice: nice, io: try ionice.map { try ProcessPriority.parseIOClass($0) }).apply()
        let logger = try logging.makeLogger(label: "osbackup.backup")
        let board = json ? nil : ProgressBoard.forTerminal()
        var reporter: (@Sendable (VolumeProgress) -> Void)?
        if let board { reporter = { board.update($0) } }
        let progress = reporter
        let (cloud, proxy, to, parallel, json) = (self.cloud, self.proxy, self.to, self.parallel, self.json)
        let started = Date()
        let report: CloudBackupReport
        do {
            report = try await runJob()
        } catch {
            board?.finish()
            writeMetrics(.failedBeforeVolumes, started: started, state: proxy.state, logger: logger)
            throw error
        }
        board?.finish()
        writeMetrics(.ran(report), started: started, state: proxy.state, logger: logger)

        @Sendable func runJob() async throws -> CloudBackupReport {
            try await cancellableOnSignals {
            try await withCloud(cloud, logger: logger) { configuration, services, transport in
                let proxyID = try await proxy.proxyServerID(configuration: configuration, transport: transport, logger: logger)
                let jobID = BackupID.generate()
                let sink: any BackupSink = if streams {
                    try TarSink(descriptor: STDOUT_FILENO, outputName: "standard output", spoolDirectory: "\(proxy.state)/spool", jobID: jobID, logger: logger)
                } else {
                    try DirectorySink(repository: BackupRepository(directory: to, create: true), jobID: jobID, dataEncoding: dataEncoding)
                }
                return try await CloudBackupJob.run(
                    CloudBackupRequest(
                        selection: selection, level: level, stateDirectory: proxy.state, proxyServerID: proxyID,
                        devices: proxy.devices(configuration: configuration), parallel: parallel, readRateLimiter: limiter,
                        directIO: directIO, progress: progress),
                    cloud: services, sink: sink, jobID: jobID, logger: logger)
            }
            }
        }
        printError(report.summaryTable())
        if streams {
            // Standard output carries the tar alone.
            if json { printError(try jsonText(report)) } else { printError(report.jobID) }
        } else if json {
            try printJSON(report)
        } else {
            print(report.jobID)
        }
        if report.isPartial { throw ExitCode(ExitStatus.partial) }
        if !report.allSaved { throw ExitCode(ExitStatus.failure) }
    }

    /// `--metrics-file`: the job's figures for Prometheus; a failure to write them is a warning (the backup
    /// itself is unaffected; the file's last-run time then goes stale, which an alert can see).
    private func writeMetrics(_ outcome: JobMetrics.Outcome, started: Date, state: String, logger: Logger) {
        guard let metricsFile else { return }
        let job = metricsJob ?? ((metricsFile as NSString).lastPathComponent as NSString).deletingPathExtension
        let metrics = JobMetrics(job: job, started: started, ended: Date(), outcome: outcome)
        do {
            try metrics.write(to: metricsFile, stateDirectory: state)
        } catch {
            logger.warning("metrics not written", metadata: ["osb-error": "\(error)"])
            printError("warning: \(error)")
        }
    }
}
