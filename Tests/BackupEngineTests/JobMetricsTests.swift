@testable import BackupEngine
import Foundation
import Testing

@Suite("Job metrics for node_exporter's textfile collector")
struct JobMetricsTests {
    private func volume(_ id: String, name: String, saved: Bool, read: UInt64 = 0, stored: UInt64 = 0) -> VolumeOutcome {
        VolumeOutcome(
            serverID: "s-1", serverName: "web \"1\"", volumeID: id, volumeName: name, level: "full", backupID: nil, bytesRead: read, dataBytes: stored,
            bytesStored: stored, seconds: 1.5, timings: VolumeTimings(snapshotSeconds: 0.25, scanSeconds: 1), fallbackReason: nil,
            error: saved ? nil : "timeout", errorKind: saved ? nil : .timeout)
    }

    private func report(_ volumes: [VolumeOutcome]) -> CloudBackupReport {
        CloudBackupReport(
            jobID: "j", volumes: volumes, skipped: [], sweptResources: 0, leftovers: [],
            totals: CloudJobTotals(seconds: 2, preparationSeconds: 0, volumesSeconds: 2, finishSeconds: 0, volumes: volumes))
    }

    @Test("a successful run: job and volume series with their labels (quotes escaped), totals, last success times")
    func success() throws {
        let started = Date(timeIntervalSince1970: 1_000), ended = Date(timeIntervalSince1970: 1_042.5)
        let metrics = JobMetrics(
            job: "nightly", started: started, ended: ended,
            outcome: .ran(report([volume("v-1", name: "root", saved: true, read: 100, stored: 40), volume("v-2", name: "data", saved: true, read: 50, stored: 10)])))
        var history = MetricsHistory()
        history.record(metrics)
        let text = metrics.render(history: history)
        #expect(text.contains("osbackup_job_success{job=\"nightly\"} 1\n"))
        #expect(text.contains("osbackup_job_duration_seconds{job=\"nightly\"} 42.500\n"))
        #expect(text.contains("osbackup_job_bytes_read{job=\"nightly\"} 150\n"))
        #expect(text.contains("osbackup_job_bytes_stored{job=\"nightly\"} 50\n"))
        #expect(text.contains("osbackup_job_last_success_timestamp_seconds{job=\"nightly\"} 1042.500\n"))
        #expect(text.contains(#"osbackup_volume_bytes_read{job="nightly",server_id="s-1",server_name="web \"1\"",volume_id="v-1",volume_name="root"} 100"#))
        #expect(text.contains("# TYPE osbackup_volume_last_success_timestamp_seconds gauge\n"))
        #expect(text.contains(#"osbackup_volume_openstack_wait_seconds{job="nightly",server_id="s-1",server_name="web \"1\"",volume_id="v-1",volume_name="root"} 0.250"#))
        #expect(text.contains(#"osbackup_volume_scan_seconds{job="nightly",server_id="s-1",server_name="web \"1\"",volume_id="v-1",volume_name="root"} 1"# + "\n"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: /[a-z_]+\{[^\n]*\} -?[0-9]+(\.[0-9]+)?/) != nil, "not a sample line: \(line)")
        }
    }

    @Test("a failed run keeps the last success times: the job's and each volume's, with the volume a failed run did not save")
    func failureKeepsHistory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osb-metrics-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = "\(directory)/out/osbackup-nightly.prom", state = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: "\(directory)/out", withIntermediateDirectories: true)
        let first = JobMetrics(
            job: "nightly", started: Date(timeIntervalSince1970: 100), ended: Date(timeIntervalSince1970: 200),
            outcome: .ran(report([volume("v-1", name: "root", saved: true), volume("v-2", name: "data", saved: true)])))
        try first.write(to: file, stateDirectory: state)
        let partial = JobMetrics(
            job: "nightly", started: Date(timeIntervalSince1970: 300), ended: Date(timeIntervalSince1970: 400),
            outcome: .ran(report([volume("v-1", name: "root", saved: true), volume("v-2", name: "data", saved: false)])))
        try partial.write(to: file, stateDirectory: state)
        let failed = JobMetrics(
            job: "nightly", started: Date(timeIntervalSince1970: 500), ended: Date(timeIntervalSince1970: 600), outcome: .failedBeforeVolumes)
        let text = try failed.write(to: file, stateDirectory: state)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text)
        #expect(FileManager.default.fileExists(atPath: "\(state)/metrics/nightly.json"), "the history is kept in the state directory")
        #expect(text.contains("osbackup_job_success{job=\"nightly\"} 0\n"))
        #expect(text.contains("osbackup_job_last_run_timestamp_seconds{job=\"nightly\"} 600\n"))
        #expect(text.contains("osbackup_job_last_success_timestamp_seconds{job=\"nightly\"} 200\n"), "the partial run was not a success")
        #expect(text.contains(#"osbackup_volume_last_success_timestamp_seconds{job="nightly",server_id="s-1",server_name="web \"1\"",volume_id="v-1",volume_name="root"} 400"#))
        #expect(text.contains(#"volume_id="v-2",volume_name="data"} 200"#), "v-2 was last saved by the first run")
        #expect(!text.contains("osbackup_volume_success{"), "a run that failed before its volumes reports none")
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? Int) == 0o644, "node_exporter runs as its own user")
    }
}
