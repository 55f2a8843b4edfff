import Dispatch
import Foundation
import Testing
import TestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
private func freeLoopbackPort() throws -> UInt16 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "no free port on 127.0.0.1"]) }
    return UInt16(bigEndian: address.sin_port)
}

/// `osbackup backup`, `cleanup` and `restore` as an operator runs them, against `osbackup emulator serve`.
@Suite("Cloud commands against the emulator process")
struct CloudCommandTests {
    static let seedYAML = """
        projects:
          - name: admin
        users:
          - name: admin
            password: admin-secret
            roles: {admin: [admin]}
            default_project: admin
            clouds_yaml: true
        flavors:
          - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
        servers:
          - name: backup-proxy
            project: admin
            flavor: m1.small
            proxy: true
            volumes:
              - {name: proxy-root, size: 4}
          - name: app-1
            project: admin
            flavor: m1.small
            volumes:
              - name: app-1-root
                size: 64
                content: [{random: 32M, seed: 3}]
              - name: app-1-data
                size: 64
                content: [{random: 32M, seed: 4}]
        """

    /// An emulator with slow transitions, its clouds.yaml, and the environment that points osbackup at it.
    private func withServe(_ body: (EmulatorProcess, String, [String: String]) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            try Self.seedYAML.write(toFile: directory + "/seed.yaml", atomically: true, encoding: .utf8)
            let serve = try await EmulatorProcess([
                "--state", directory + "/cloud", "--seed", directory + "/seed.yaml", "--size-unit", "mib", "--transition-delay", "0.4",
                "--clouds-yaml", directory + "/clouds.yaml",
            ])
            defer { serve.stop() }
            let environment = ["OS_CLIENT_CONFIG_FILE": directory + "/clouds.yaml", "OS_CLOUD": "emulator", "OSBACKUP_LOG_LEVEL": "notice"]
            try await body(serve, directory, environment)
        }
    }

    /// The emulator's inventory as JSON.
    private func inventory(_ directory: String) throws -> [String: Any] {
        let result = try osbackupArray(["emulator", "inventory", "--state", directory + "/cloud", "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// osbackup's resources still in the cloud: snapshots, tagged volumes, attachments to the proxy other than its root.
    private func debris(_ directory: String) throws -> [String] {
        let inventory = try inventory(directory)
        var found: [String] = []
        for snapshot in inventory["snapshots"] as? [[String: Any]] ?? [] { found.append("snapshot \(snapshot["id"] ?? "")") }
        for volume in inventory["volumes"] as? [[String: Any]] ?? [] {
            let metadata = volume["metadata"] as? [String: String] ?? [:]
            if metadata["osbackup_job"] != nil { found.append("volume \(volume["name"] ?? "")") }
        }
        for attachment in inventory["attachments"] as? [[String: Any]] ?? [] {
            if attachment["serverName"] as? String == "backup-proxy", attachment["device"] as? String != "/dev/vda" {
                found.append("attachment of \(attachment["volumeID"] ?? "")")
            }
        }
        return found
    }

    /// Starts `osbackup backup` in the background.
    private func startBackup(_ directory: String, _ environment: [String: String], extra: [String] = []) throws -> Process {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osbackup")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["backup", "--to", directory + "/repo", "--state", directory + "/state", "--level", "full", "--parallel", "1"] + extra
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: directory + "/backup.err", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: directory + "/backup.err")
        try process.run()
        return process
    }

    /// Polls until the job has created a temporary volume (snapshot done, volume on its way).
    private func waitForTemporaryVolume(_ directory: String) async throws {
        for _ in 0..<200 {
            let volumes = try inventory(directory)["volumes"] as? [[String: Any]] ?? []
            if volumes.contains(where: { ($0["name"] as? String ?? "").hasPrefix("osbackup-") }) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the backup never created a temporary volume")
    }

    @Test("SIGKILL mid-job leaves a snapshot and a volume; `cleanup --dry-run` lists them, `cleanup` removes them, the next backup succeeds")
    func killThenCleanup() async throws {
        try await withServe { _, directory, environment in
            let backup = try startBackup(directory, environment, extra: ["--bwlimit", "2M"])  // slow enough to be caught mid-job
            try await waitForTemporaryVolume(directory)
            kill(backup.processIdentifier, SIGKILL)
            backup.waitUntilExit()
            #expect(backup.terminationReason == .uncaughtSignal)
            let left = try debris(directory)
            #expect(left.contains { $0.hasPrefix("snapshot") }, "\(left)")

            let arguments = ["cleanup", "--state", directory + "/state"]
            let dry = try osbackupArray(arguments + ["--dry-run"], environment: environment)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(try debris(directory).count == left.count, "a dry run removes nothing")
            #expect((dry.stdout + dry.stderr).contains("snapshot"), "\(dry.stdout)\(dry.stderr)")

            let cleanup = try osbackupArray(arguments, environment: environment)
            #expect(cleanup.status == 0, "\(cleanup.stderr)")
            let remaining = try debris(directory)
            #expect(remaining.isEmpty, "\(remaining)")

            let next = try osbackupArray(
                ["backup", "--to", directory + "/repo", "--state", directory + "/state", "--level", "full"], environment: environment)
            #expect(next.status == 0, "\(next.stderr)")
            #expect(UUID(uuidString: next.lastLine) != nil, "the job id is the last line: \(next.stdout)")
            #expect(try debris(directory).isEmpty)
        }
    }

    @Test("--metrics-file after a backup and after a failed one: node_exporter's textfile collector reads both, the last success kept")
    func metricsForNodeExporter() async throws {
        try await withServe { _, directory, environment in
            let metrics = directory + "/textfile"
            try FileManager.default.createDirectory(atPath: metrics, withIntermediateDirectories: true)
            let common = ["backup", "--to", directory + "/repo", "--state", directory + "/state", "--metrics-file", metrics + "/osbackup.prom"]
            let backup = try osbackupArray(common, environment: environment)
            #expect(backup.status == 0, "\(backup.stderr)")
            let first = try String(contentsOfFile: metrics + "/osbackup.prom", encoding: .utf8)
            #expect(first.contains("osbackup_job_success{job=\"osbackup\"} 1"))
            let success = try #require(first.firstMatch(of: /osbackup_job_last_success_timestamp_seconds\{job="osbackup"\} ([0-9.]+)/)?.1)

            let missing = try osbackupArray(common + ["--volume", "0e0e0e0e-0000-4000-8000-000000000000", "--metrics-job", "osbackup"], environment: environment)
            #expect(missing.status != 0, "a volume that does not exist fails the job")
            let second = try String(contentsOfFile: metrics + "/osbackup.prom", encoding: .utf8)
            #expect(second.contains("osbackup_job_success{job=\"osbackup\"} 0"))
            #expect(second.contains("osbackup_job_last_success_timestamp_seconds{job=\"osbackup\"} \(success)"), "\(second)")
            #expect(second.contains("osbackup_volume_last_success_timestamp_seconds{"), "the volumes saved by the first run")

            // The real consumer: node_exporter with only its textfile collector, scraped once.
            let exporter = "/usr/bin/prometheus-node-exporter"
            try #require(FileManager.default.isExecutableFile(atPath: exporter), "install prometheus-node-exporter (scripts/install-deps)")
            let port = try freeLoopbackPort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: exporter)
            process.arguments = [
                "--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory=\(metrics)",
                "--web.listen-address=127.0.0.1:\(port)",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { process.terminate(); process.waitUntilExit() }
            var scraped = ""
            for _ in 0..<100 {
                if let (data, _) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!) {
                    scraped = String(decoding: data, as: UTF8.self)
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(scraped.contains("node_textfile_scrape_error 0"), "node_exporter could not read the file: \(scraped.prefix(2000))")
            #expect(scraped.contains("osbackup_job_success{job=\"osbackup\"} 0"))
            #expect(scraped.contains("osbackup_job_last_success_timestamp_seconds{job=\"osbackup\"}"))
        }
    }

    @Test("SIGTERM mid-job: exit 1, the job removes its own temporary resources before it exits")
    func terminateCleansUp() async throws {
        try await withServe { _, directory, environment in
            let backup = try startBackup(directory, environment, extra: ["--bwlimit", "2M"])  // slow enough to be caught mid-job
            try await waitForTemporaryVolume(directory)
            kill(backup.processIdentifier, SIGTERM)
            backup.waitUntilExit()
            #expect(backup.terminationReason == .exit && backup.terminationStatus == 1)
            let remaining = try debris(directory)
            #expect(remaining.isEmpty, "\(remaining)")
        }
    }

    @Test("wrong credentials and a missing proxy identity: exit 2 or 1 with the cause named, no secret printed, nothing created")
    func badConfiguration() async throws {
        try await withServe { _, directory, environment in
            let clouds = try String(contentsOfFile: directory + "/clouds.yaml", encoding: .utf8)
            let wrong = clouds.replacingOccurrences(of: "admin-secret", with: "not-the-password")
            #expect(wrong != clouds)
            try wrong.write(toFile: directory + "/wrong.yaml", atomically: true, encoding: .utf8)
            var wrongEnvironment = environment
            wrongEnvironment["OS_CLIENT_CONFIG_FILE"] = directory + "/wrong.yaml"
            let denied = try osbackupArray(["backup", "--to", directory + "/repo", "--state", directory + "/state"], environment: wrongEnvironment)
            #expect(denied.status != 0)
            #expect(denied.stderr.contains("401") || denied.stderr.lowercased().contains("authentic"), "\(denied.stderr)")
            #expect(!denied.stderr.contains("not-the-password") && !denied.stdout.contains("not-the-password"))

            let anonymous = clouds.split(separator: "\n").filter { !$0.contains("osbackup_proxy_server") }.joined(separator: "\n")
            try anonymous.write(toFile: directory + "/anonymous.yaml", atomically: true, encoding: .utf8)
            var anonymousEnvironment = environment
            anonymousEnvironment["OS_CLIENT_CONFIG_FILE"] = directory + "/anonymous.yaml"
            anonymousEnvironment["OSBACKUP_METADATA_URL"] = "http://127.0.0.1:9/openstack/latest/meta_data.json"
            let noProxy = try osbackupArray(["backup", "--to", directory + "/repo", "--state", directory + "/state"], environment: anonymousEnvironment)
            #expect(noProxy.status == 2, "\(noProxy.stderr)")
            #expect(noProxy.stderr.contains("--proxy-server"), "\(noProxy.stderr)")
            #expect(try debris(directory).isEmpty)
        }
    }

    @Test("backup --json reports each volume's seconds waiting on OpenStack and scanning, and the job's totals; the table shows them")
    func jobTimings() async throws {
        try await withServe { _, directory, environment in
            // Off the cooperative pool: a job of several seconds must not hold one of its threads (the suite's
            // other tests sample a running backup from it).
            let result = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(
                        with: Result {
                            try osbackupArray(
                                ["backup", "--to", directory + "/repo", "--state", directory + "/state", "--level", "full", "--parallel", "1", "--json"],
                                environment: environment)
                        })
                }
            }
            try #require(result.status == 0, "\(result.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let volumes = try #require(report["volumes"] as? [[String: Any]])
            #expect(volumes.count == 2)
            for volume in volumes {
                let timings = try #require(volume["timings"] as? [String: Double], "\(volume)")
                // snapshot, temporary volume, attach (two transitions) and detach each wait out 0.4 s transitions.
                #expect(timings["openStackWaitSeconds"] ?? 0 >= 4 * 0.4, "\(timings)")
                #expect(timings["scanSeconds"] ?? 0 > 0, "\(timings)")
                #expect(timings["openStackWaitSeconds"]! + timings["scanSeconds"]! <= (volume["seconds"] as? Double ?? 0) + 1e-6)
            }
            let totals = try #require(report["totals"] as? [String: Any])
            #expect(totals["bytesRead"] as? Int == 2 * (64 << 20), "two 64 MiB volumes: \(totals)")
            #expect((totals["seconds"] as? Double ?? 0) >= (totals["volumesSeconds"] as? Double ?? .infinity))
            #expect(result.stderr.contains("openstack") && result.stderr.contains("s waiting on OpenStack"), "\(result.stderr)")
        }
    }

    @Test("--config supplies options the command line does not give; --nice and --ionice reach the main and scan threads; --bwlimit holds the read rate")
    func configAndLimits() async throws {
        try await withServe { _, directory, environment in
            try """
                state: \(directory)/state
                backup:
                  nice: 7
                  ionice: idle
                  bwlimit: 8M
                  level: nonsense
                restore:
                  name-prefix: never-read-by-backup-
                """.write(toFile: directory + "/osbackup.yaml", atomically: true, encoding: .utf8)
            let bad = try osbackupArray(["backup", "--config", directory + "/osbackup.yaml", "--to", directory + "/repo"], environment: environment)
            #expect(bad.status == 2 && bad.stderr.contains("unknown level 'nonsense'"), "the file was read: \(bad.stderr)")

            let started = ContinuousClock.now
            let backup = try startBackup(directory, environment, extra: ["--config", directory + "/osbackup.yaml"])  // --level full wins
            let pid = backup.processIdentifier
            /// The nice value of each thread that reads or hashes (osb-work, osb-pipeline) and of the main thread.
            @Sendable func scanThreadNiceness() -> [String: String] {
                var found: [String: String] = [:]
                for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
                    let name = ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)) ?? "")
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                    guard task == "\(pid)" || name == "osb-work" || name == "osb-pipeline",
                        let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                        let close = stat.range(of: ")", options: .backwards)
                    else { continue }
                    // Field 19 is the nice value; after the command name's ')' it is the 17th.
                    found["\(name) \(task)"] = String(stat[close.upperBound...].split(separator: " ")[16])
                }
                return found
            }
            // Sampled while a scan runs (the threads exist only then), from a thread of its own: on a loaded
            // machine the test's cooperative pool may be busy with other tests for the whole scan.
            let sample = await withCheckedContinuation { (continuation: CheckedContinuation<[String: String], Never>) in
                Thread {
                    var sample: [String: String] = [:]
                    for _ in 0..<2400 {
                        sample = scanThreadNiceness()
                        if sample.keys.contains(where: { $0.hasPrefix("osb-pipeline") }) || kill(pid, 0) != 0 { break }
                        usleep(25_000)
                    }
                    continuation.resume(returning: sample)
                }.start()
            }
            #expect(
                sample.keys.contains { $0.hasPrefix("osb-pipeline") },
                "no scan thread seen: \(sample); backup: \((try? String(contentsOfFile: directory + "/backup.err", encoding: .utf8)) ?? "")")
            #expect(sample.values.allSatisfy { $0 == "7" }, "\(sample)")
            let (_, ionice) = try await runProgram("/usr/bin/ionice", ["-p", "\(pid)"])
            #expect(ionice.contains("idle"), "\(ionice)")
            backup.waitUntilExit()
            #expect(backup.terminationStatus == 0)
            // Two volumes holding 32 MiB of data each (the rest are holes, found and not read) read at 8 MiB/s: at
            // least 7 s of reading after a 1 s burst. The reading threads are the ones held, so they live meanwhile.
            #expect(ContinuousClock.now - started >= .seconds(7))
            #expect(try debris(directory).isEmpty)
            // The same file serves cleanup: it reads the top level, not the backup or restore sections.
            let cleanup = try osbackupArray(["cleanup", "--config", directory + "/osbackup.yaml"], environment: environment)
            #expect(cleanup.status == 0, "\(cleanup.stderr)")
        }
    }

    /// The volume records of every job manifest in `repository`, with the format version of each data file.
    private func storedVolumes(_ repository: String) throws -> [(record: [String: Any], dataVersion: UInt16)] {
        var found: [(record: [String: Any], dataVersion: UInt16)] = []
        for job in try FileManager.default.contentsOfDirectory(atPath: repository) {
            let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(repository)/\(job)/manifest.json")))
            for volume in (manifest as? [String: Any])?["volumes"] as? [[String: Any]] ?? [] {
                let header = try DiskImage.read("\(repository)/\(job)/\(volume["dataFile"] as? String ?? "")")
                found.append((volume, UInt16(header[8]) | UInt16(header[9]) << 8))
            }
        }
        return found
    }

    @Test("backup --compression none stores raw data files, the default zstd frames; a tar stream refuses compression")
    func compressionOption() async throws {
        try await withServe { _, directory, environment in
            let common = ["--level", "full", "--parallel", "2"]
            let raw = try osbackupArray(
                ["backup", "--to", directory + "/raw", "--state", directory + "/state-raw", "--compression", "none"] + common,
                environment: environment)
            #expect(raw.status == 0, "\(raw.stderr)")
            let rawVolumes = try storedVolumes(directory + "/raw")
            #expect(rawVolumes.count == 2)
            for (record, version) in rawVolumes {
                #expect(version == 1)
                #expect(record["storedBytes"] as? Int == record["dataBytes"] as? Int)
            }

            let framed = try osbackupArray(
                ["backup", "--to", directory + "/framed", "--state", directory + "/state-framed"] + common, environment: environment)
            #expect(framed.status == 0, "\(framed.stderr)")
            let framedVolumes = try storedVolumes(directory + "/framed")
            #expect(framedVolumes.count == 2)
            for (record, version) in framedVolumes {
                #expect(version == 2)
                // Random data does not shrink: every block is a raw frame, its word and its bytes.
                let dataBytes = try #require(record["dataBytes"] as? Int)
                let dataBlocks = try #require(record["dataBlocks"] as? Int)
                #expect(record["storedBytes"] as? Int == dataBytes + 4 * dataBlocks)
            }

            let stream = try osbackupArray(
                ["backup", "--to", "-", "--state", directory + "/state-stream", "--compression", "zstd"] + common, environment: environment)
            #expect(stream.status == 2, "\(stream.stderr)")
            #expect(stream.stderr.contains("tar stream") && stream.stderr.contains("| zstd"), "\(stream.stderr)")
            let unknown = try osbackupArray(
                ["backup", "--to", directory + "/x", "--state", directory + "/state-x", "--compression", "lz4"] + common,
                environment: environment)
            #expect(unknown.status == 2 && unknown.stderr.contains("unknown compression 'lz4'"), "\(unknown.stderr)")
            #expect(try debris(directory).isEmpty)
        }
    }
}
