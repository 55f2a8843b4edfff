public import Foundation

/// A backup's figures as Prometheus text for node_exporter's textfile collector: written after every job
/// (a failed one too), replacing the file atomically, so that an alert can ask "when did this job, or
/// this volume, last succeed?" and "how much did it read and store?".
///
/// The success times outlive a failed job: they are kept in a small history file in the state directory
/// (``MetricsHistory``) and written again each time, with the volumes a failed or partial job did not save.
/// Every series is a gauge labelled with `job` (the CLI's `--metrics-job`, the Bacula Job's name).
public struct JobMetrics: Sendable {
    /// How the job ended.
    public enum Outcome: Sendable {
        /// The job ran; its volumes say which were saved.
        case ran(CloudBackupReport)
        /// The job failed before it had volumes to report (no cloud, bad options…).
        case failedBeforeVolumes
    }

    /// The job's name, the `job` label.
    public var job: String
    /// When it started and ended.
    public var started: Date, ended: Date
    /// What it did.
    public var outcome: Outcome

    /// The figures of a job.
    public init(job: String, started: Date, ended: Date, outcome: Outcome) {
        self.job = job
        self.started = started
        self.ended = ended
        self.outcome = outcome
    }

    /// Whether the job succeeded: it ran and saved every volume it selected.
    public var succeeded: Bool {
        if case .ran(let report) = outcome { return report.allSaved }
        return false
    }

    /// Writes the text to `path` (atomically, mode 0644) after updating the job's history in the state
    /// directory `stateDirectory` (``MetricsHistory/path(stateDirectory:job:)``); returns the text written.
    @discardableResult
    public func write(to path: String, stateDirectory: String) throws(BackupError) -> String {
        let historyPath = MetricsHistory.path(stateDirectory: stateDirectory, job: job)
        var history = MetricsHistory.load(historyPath)
        history.record(self)
        let text = render(history: history)
        do {
            try FileManager.default.createDirectory(
                atPath: (historyPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try DurableFile.replace(Array(try JSONEncoder().encode(history)), at: historyPath)
            try DurableFile.replace(Array(text.utf8), at: path, permissions: 0o644)
        } catch {
            throw BackupError(
                .failed, resource: "metrics file \(path)", "could not be written: \(error)",
                hint: "check that its folder exists and is writable (node_exporter's --collector.textfile.directory)")
        }
        return text
    }

    /// The Prometheus text of this job, with the success times of `history`.
    public func render(history: MetricsHistory) -> String {
        var out = MetricsText()
        let job = ["job": self.job]
        out.gauge("osbackup_job_last_run_timestamp_seconds", "When the job last ended (Unix time).", [(job, ended.timeIntervalSince1970)])
        out.gauge(
            "osbackup_job_last_success_timestamp_seconds", "When the job last ended with every volume saved (Unix time).",
            history.jobLastSuccess.map { [(job, $0)] } ?? [])
        out.gauge("osbackup_job_success", "1 when the last run saved every volume it selected, else 0.", [(job, succeeded ? 1 : 0)])
        out.gauge("osbackup_job_duration_seconds", "How long the last run took.", [(job, ended.timeIntervalSince(started))])
        let volumes: [VolumeOutcome]
        if case .ran(let report) = outcome { volumes = report.volumes } else { volumes = [] }
        out.gauge("osbackup_job_bytes_read", "Bytes of the volumes the last run scanned (their size: holes of sparse sources are scanned without being read).", [(job, Double(volumes.reduce(0) { $0 + $1.bytesRead }))])
        out.gauge(
            "osbackup_job_bytes_stored", "Bytes of block data the last run stored (after compression).",
            [(job, Double(volumes.reduce(0) { $0 + $1.bytesStored }))])
        out.gauge(
            "osbackup_job_volumes", "Volumes of the last run, by outcome.",
            [
                (job.merging(["outcome": "saved"]) { $1 }, Double(volumes.filter(\.saved).count)),
                (job.merging(["outcome": "failed"]) { $1 }, Double(volumes.filter { !$0.saved }.count)),
            ])
        func labels(_ volume: VolumeOutcome) -> [String: String] {
            var labels = job
            labels["volume_id"] = volume.volumeID
            labels["volume_name"] = volume.volumeName ?? ""
            labels["server_id"] = volume.serverID ?? ""
            labels["server_name"] = volume.serverName ?? ""
            return labels
        }
        out.gauge("osbackup_volume_success", "1 when the last run saved the volume, else 0.", volumes.map { (labels($0), $0.saved ? 1 : 0) })
        out.gauge("osbackup_volume_bytes_read", "Bytes of the volume the last run scanned (its size: holes of a sparse source are scanned without being read).", volumes.map { (labels($0), Double($0.bytesRead)) })
        out.gauge(
            "osbackup_volume_bytes_stored", "Bytes of the volume's block data the last run stored.", volumes.map { (labels($0), Double($0.bytesStored)) })
        out.gauge(
            "osbackup_volume_duration_seconds", "Seconds the last run spent on the volume, snapshot to cleanup.",
            volumes.map { (labels($0), $0.seconds) })
        out.gauge(
            "osbackup_volume_openstack_wait_seconds", "Seconds the last run waited on OpenStack for the volume (snapshot, temporary volume, attach, cleanup).",
            volumes.map { (labels($0), $0.timings.openStackWaitSeconds) })
        out.gauge("osbackup_volume_scan_seconds", "Seconds the last run spent reading the volume.", volumes.map { (labels($0), $0.timings.scanSeconds) })
        out.gauge(
            "osbackup_volume_last_success_timestamp_seconds", "When the volume was last saved by this job (Unix time).",
            history.volumes.sorted { $0.key < $1.key }.map { id, volume in
                (job.merging(["volume_id": id, "volume_name": volume.name, "server_id": volume.serverID, "server_name": volume.serverName]) { $1 },
                 volume.lastSuccess)
            })
        return out.text
    }
}

/// The success times a job's metrics carry from run to run: the job's, and each volume's with the names
/// it had when last saved.
public struct MetricsHistory: Sendable, Codable, Equatable {
    /// One volume's last success.
    public struct Volume: Sendable, Codable, Equatable {
        /// Unix time.
        public var lastSuccess: Double
        /// Its name, its server's id and name then.
        public var name: String, serverID: String, serverName: String
    }

    /// When the job last saved every volume (Unix time).
    public var jobLastSuccess: Double?
    /// Each volume's, by volume id.
    public var volumes: [String: Volume] = [:]

    /// An empty history.
    public init() {}

    /// Where the history of job `job` is kept: `<state>/metrics/<path-safe job name>.json`.
    public static func path(stateDirectory: String, job: String) -> String {
        "\(stateDirectory)/metrics/\(PathSafeName.make(job)).json"
    }

    /// The history at `path`; empty when there is none or it cannot be read (the next success rebuilds it).
    public static func load(_ path: String) -> MetricsHistory {
        guard let data = FileManager.default.contents(atPath: path), let history = try? JSONDecoder().decode(Self.self, from: data) else {
            return MetricsHistory()
        }
        return history
    }

    /// Adds what `metrics` saved.
    public mutating func record(_ metrics: JobMetrics) {
        let now = metrics.ended.timeIntervalSince1970
        if metrics.succeeded { jobLastSuccess = now }
        guard case .ran(let report) = metrics.outcome else { return }
        for volume in report.volumes where volume.saved {
            volumes[volume.volumeID] = Volume(
                lastSuccess: now, name: volume.volumeName ?? "", serverID: volume.serverID ?? "", serverName: volume.serverName ?? "")
        }
    }
}

/// Prometheus text exposition format 0.0.4: `# HELP`, `# TYPE`, then `name{labels} value` lines.
struct MetricsText {
    private(set) var text = ""

    /// A gauge with its samples (none: only its help and type, which Prometheus accepts).
    mutating func gauge(_ name: String, _ help: String, _ samples: [([String: String], Double)]) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
        for (labels, value) in samples {
            let rendered = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escaped($0.value))\"" }.joined(separator: ",")
            text += "\(name){\(rendered)} \(Self.number(value))\n"
        }
    }

    /// A label value with `\`, `"` and newlines escaped.
    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Whole numbers without a fraction, others with millisecond precision.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.3f", value)
    }
}
