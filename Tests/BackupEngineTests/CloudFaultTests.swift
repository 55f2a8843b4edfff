import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The hash maps in the working directory, by volume id: they must not move past data that was not stored.
private func maps(_ directory: String) -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/state")) ?? []).filter { $0.hasSuffix(".map") })
}

@Suite("Cloud backups under faults")
struct CloudFaultTests {
    @Test("bursts of 502/503/429 on Cinder and Nova are retried: every volume saved, nothing left behind")
    func serviceErrorBursts() async throws {
        let faults = FaultPlan(
            seed: 11,
            rules: [
                FaultRule(method: "POST", path: "/snapshots", rate: 0.3, status: 503, retryAfter: 0),
                FaultRule(method: "GET", path: "/volumes/", rate: 0.25, status: 502),
                FaultRule(path: "/os-volume_attachments", rate: 0.3, status: 429, retryAfter: 0),
            ])
        let emulatorLog = CapturingLogHandler()
        try await withCloudJob(
            faults: faults, retryPolicy: RetryPolicy(maximumAttempts: 10, initialDelay: .milliseconds(5)), emulatorLog: emulatorLog
        ) { running, cloud, directory in
            let report = try await runJob(request(directory, running, level: .full, parallel: 2), cloud, repository: "\(directory)/repo")
            #expect(report.allSaved, "\(report.volumes.compactMap(\.error))")
            #expect(report.volumes.count == 4)
            let injected = emulatorLog.text.components(separatedBy: "\n").filter { $0.contains("injected fault") }
            for status in ["503", "502", "429"] {
                #expect(injected.contains { $0.contains("\"osb-status\": \(status)") }, "no \(status) was injected: \(emulatorLog.count) lines")
            }
            try expectNoDebris(running)
        }
    }

    @Test("a token that stops working mid-job is renewed after the 401 and the job goes on")
    func tokenExpiryMidJob() async throws {
        let emulatorLog = CapturingLogHandler()
        try await withCloudJob(faults: FaultPlan(tokenValidForSeconds: 1), transitionDelay: 0.3, emulatorLog: emulatorLog) {
            running, cloud, directory in
            let started = ContinuousClock.now
            let report = try await runJob(request(directory, running, level: .full, parallel: 1), cloud, repository: "\(directory)/repo")
            #expect(ContinuousClock.now - started > .seconds(2), "the job outlived its first token")
            #expect(report.allSaved, "\(report.volumes.compactMap(\.error))")
            let issued = emulatorLog.text.components(separatedBy: "\n").filter { $0.contains("token issued") }.count
            #expect(issued >= 3, "the first token and at least two renewals after 401s (\(issued) issued of \(emulatorLog.count) lines)")
            try expectNoDebris(running)
        }
    }

    @Test("a device that never appears on the proxy: a timeout naming the paths tried; the volume is detached and deleted")
    func deviceNeverAppears() async throws {
        try await withCloudJob(faults: FaultPlan(deviceDelayMilliseconds: 600_000)) { running, cloud, directory in
            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(volumes: [EmulatorSeed.volumeID("loose")], allProjects: true),
                    deviceTimeout: .milliseconds(500)),
                cloud, repository: "\(directory)/repo")
            let outcome = try #require(report.volumes.first)
            #expect(outcome.errorKind == .timeout)
            #expect(outcome.error?.contains("disk/by-id/virtio-") == true, "\(outcome.error ?? "")")
            #expect(outcome.error?.contains("--device-directory") == true)
            // The steps it ran keep their times: the attach waited out the 0.5 s device timeout; no scan ran.
            #expect(outcome.timings.snapshotSeconds > 0 && outcome.timings.temporaryVolumeSeconds > 0, "\(outcome.timings)")
            #expect(outcome.timings.attachSeconds >= 0.5, "\(outcome.timings)")
            #expect(outcome.timings.scanSeconds == 0 && outcome.timings.cleanupSeconds > 0, "\(outcome.timings)")
            #expect(maps(directory).isEmpty, "no map advanced")
            try expectNoDebris(running)
        }
    }

    @Test("a snapshot stuck in 'creating': the volume fails with a timeout, the stuck snapshot stays in the journal and is reported")
    func stuckSnapshot() async throws {
        try await withCloudJob(faults: FaultPlan(stuck: ["snapshot:creating"]), waitTimeout: .milliseconds(800)) { running, cloud, directory in
            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(volumes: [EmulatorSeed.volumeID("loose")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            let outcome = try #require(report.volumes.first)
            #expect(outcome.errorKind == .timeout, "\(outcome.error ?? "")")
            #expect(outcome.error?.contains("creating") == true)
            // Cinder cannot delete a snapshot while it is creating: honest reporting, kept for the next sweep.
            #expect(report.leftovers.contains { $0.contains("snapshot") }, "\(report.leftovers)")
            let journal = "\(directory)/state/jobs/\(report.jobID).journal"
            #expect(FileManager.default.fileExists(atPath: journal))
            #expect(try String(contentsOfFile: journal, encoding: .utf8).contains("snapshot"))
            #expect(maps(directory).isEmpty)
            #expect(try running.inventory().volumes.allSatisfy { !($0.name ?? "").hasPrefix("osbackup-") }, "the volume step never began")
        }
    }

    @Test("quota exceeded (413) on the proxy's project: a no-space error naming the quota, nothing created, no map advanced")
    func quotaExceeded() async throws {
        let seed = cloudSeed.replacingOccurrences(
            of: "  - name: admin\n  - name: tenant", with: "  - name: admin\n    quota: {volumes: 30, snapshots: 0, gigabytes: 1000}\n  - name: tenant")
        #expect(seed != cloudSeed)
        try await withCloudJob(seed: seed) { running, cloud, directory in
            let report = try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo")
            #expect(report.volumes.count == 4)
            #expect(report.volumes.allSatisfy { $0.errorKind == .noSpace }, "\(report.volumes.map(\.errorKind))")
            #expect(report.volumes.allSatisfy { ($0.error ?? "").lowercased().contains("quota") }, "\(report.volumes.compactMap(\.error))")
            #expect(maps(directory).isEmpty)
            #expect(try BackupRepository(directory: "\(directory)/repo", create: true).jobs().count == 1, "the job's names and configurations are stored")
            try expectNoDebris(running)
        }
    }

    @Test("a full disk under the repository: the volume fails with no-space, its files are dropped, no map advanced", .enabled(if: getuid() == 0))
    func diskFullOnTheSink() async throws {
        try await withCloudJob { running, cloud, directory in
            let repo = "\(directory)/small"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            let (status, output) = try await runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", repo])
            try #require(status == 0, "\(output)")
            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(servers: [.name("db-1")], allProjects: true)),
                cloud, repository: repo)
            let outcome = try #require(report.volumes.first)
            #expect(outcome.errorKind == .noSpace, "\(outcome.error ?? "")")
            #expect(maps(directory).isEmpty)
            _ = try await runProgram("/bin/umount", [repo])
            try expectNoDebris(running)
        }
    }
}
