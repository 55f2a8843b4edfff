import Foundation
import Testing
import TestSupport

/// Two `osbackup backup` processes, one per proxy, against one `osbackup emulator serve` with two proxies:
/// each proxy's crash and cleanup stay its own.
@Suite("Two proxies against the emulator process")
struct TwoProxyCommandTests {
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
          - name: proxy-1
            project: admin
            flavor: m1.small
            proxy: true
            volumes:
              - {name: proxy-1-root, size: 4}
          - name: proxy-2
            project: admin
            flavor: m1.small
            proxy: true
            volumes:
              - {name: proxy-2-root, size: 4}
          - name: app-1
            project: admin
            flavor: m1.small
            volumes:
              - {name: app-1-root, size: 32, content: [{random: 32M, seed: 1}]}   # killed mid-read (32 s at 1M/s: all data, no holes to skip)
          - name: app-2
            project: admin
            flavor: m1.small
            volumes:
              - {name: app-2-root, size: 8, content: [{random: 8M, seed: 2}]}      # 8 s at 1M/s
        """

    /// `osbackupArray` on a thread of its own: this test polls, and a pool thread held by each poll would
    /// starve the tests that run beside it.
    private func osbackupOffPool(_ arguments: [String], environment: [String: String]? = nil) async throws -> CommandResult {
        try await onOwnThread { try osbackupArray(arguments, environment: environment) }
    }

    /// osbackup's temporary resources in the emulator, each as "<kind> <id> <proxy tag> <attached to>".
    private func temporaryResources(_ directory: String) async throws -> [String] {
        try await onOwnThread { try Self.temporaryResourcesNow(directory) }
    }

    /// ``temporaryResources(_:)``, blocking the calling thread.
    private static func temporaryResourcesNow(_ directory: String) throws -> [String] {
        let result = try osbackupArray(["emulator", "inventory", "--state", directory + "/cloud", "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        let inventory = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let attachments = inventory["attachments"] as? [[String: Any]] ?? []
        var found: [String] = []
        for snapshot in inventory["snapshots"] as? [[String: Any]] ?? [] {
            let metadata = snapshot["metadata"] as? [String: String] ?? [:]
            found.append("snapshot \(snapshot["id"] ?? "") \(metadata["osbackup_proxy"] ?? "untagged")")
        }
        for volume in inventory["volumes"] as? [[String: Any]] ?? [] {
            let metadata = volume["metadata"] as? [String: String] ?? [:]
            guard let proxy = metadata["osbackup_proxy"] else { continue }
            let server = attachments.first { $0["volumeID"] as? String == volume["id"] as? String }?["serverName"] as? String
            found.append("volume \(volume["id"] ?? "") \(proxy) \(volume["status"] ?? "") \(server ?? "unattached")")
        }
        return found.sorted()
    }

    private func serverID(_ directory: String, _ name: String) async throws -> String {
        let result = try await osbackupOffPool(["emulator", "inventory", "--state", directory + "/cloud", "--json"])
        let inventory = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let servers = inventory["servers"] as? [[String: Any]] ?? []
        return try #require(servers.first { $0["name"] as? String == name }?["id"] as? String)
    }

    /// Starts `osbackup backup` of `server` as the proxy of clouds.yaml entry `cloud`, with its own state.
    private func startBackup(_ directory: String, cloud: String, server: String, state: String) throws -> Process {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osbackup")
        let process = Process()
        process.executableURL = binary
        process.arguments = [
            "backup", "--os-cloud", cloud, "--server", server, "--to", "\(directory)/repo-\(state)", "--state", "\(directory)/\(state)",
            "--level", "full", "--bwlimit", "1M",  // seconds of reading: caught mid-read
        ]
        process.environment = ["OS_CLIENT_CONFIG_FILE": directory + "/clouds.yaml", "OSBACKUP_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin"]
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: "\(directory)/\(state).err", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: "\(directory)/\(state).err")
        try process.run()
        return process
    }

    /// Polls (every 100 ms, up to 60 s, on a thread of its own so that a busy pool never delays it) until a
    /// temporary volume of `proxyID` is in use on that proxy, then sends `signal` to `process` at once;
    /// false, with an issue that holds the job's standard error (`<job>.err`), when none is seen.
    private func whenAttached(
        _ directory: String, proxyID: String, proxyName: String, job: String, signal: Int32, to process: Process
    ) async throws -> Bool {
        let pid = process.processIdentifier
        let (seen, resources) = try await onOwnThread { () throws -> (Bool, [String]) in
            let deadline = Date().addingTimeInterval(60)
            var resources: [String] = []
            while Date() < deadline {
                resources = try Self.temporaryResourcesNow(directory)
                if resources.contains(where: { $0.hasSuffix("\(proxyID) in-use \(proxyName)") }) {
                    kill(pid, signal)
                    return (true, resources)
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return (false, resources)
        }
        if !seen {
            let log = (try? String(contentsOfFile: "\(directory)/\(job).err", encoding: .utf8)) ?? ""
            Issue.record("no temporary volume in use on \(proxyName) within 60 s: \(resources); \(job): \(log)")
        }
        return seen
    }

    @Test("proxy 1's job killed mid-read while proxy 2's runs: proxy 1's cleanup removes only its leftovers; proxy 2's job ends 0, nothing is left")
    func killOneProxyCleanupSparesTheOther() async throws {
        try await withTemporaryDirectory { directory in
            try Self.seedYAML.write(toFile: directory + "/seed.yaml", atomically: true, encoding: .utf8)
            let serve = try await EmulatorProcess([
                "--state", directory + "/cloud", "--seed", directory + "/seed.yaml", "--size-unit", "mib", "--transition-delay", "0.2",
                "--clouds-yaml", directory + "/clouds.yaml",
            ])
            defer { serve.stop() }
            let environment = ["OS_CLIENT_CONFIG_FILE": directory + "/clouds.yaml"]
            let (proxy1, proxy2) = (try await serverID(directory, "proxy-1"), try await serverID(directory, "proxy-2"))
            // Proxy 2's job first: once its temporary volume is attached it is held still (SIGSTOP), live
            // whatever the machine's load, with its lock held and its resources in the cloud.
            let second = try startBackup(directory, cloud: "emulator-proxy-2", server: "app-2", state: "state-2")
            defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
            try #require(try await whenAttached(directory, proxyID: proxy2, proxyName: "proxy-2", job: "state-2", signal: SIGSTOP, to: second))
            let secondsResources = try await temporaryResources(directory).filter { $0.contains(proxy2) }
            #expect(secondsResources.contains { $0.hasPrefix("snapshot") } && secondsResources.contains { $0.hasPrefix("volume") })

            // Then proxy 1's job, killed mid-read.
            let first = try startBackup(directory, cloud: "emulator", server: "app-1", state: "state-1")
            defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
            try #require(try await whenAttached(directory, proxyID: proxy1, proxyName: "proxy-1", job: "state-1", signal: SIGKILL, to: first))
            await waitForExit(of: first)
            #expect(first.terminationReason == .uncaughtSignal)
            let firstsLeftovers = try await temporaryResources(directory).filter { $0.contains(proxy1) }
            #expect(!firstsLeftovers.isEmpty, "the killed job left nothing to clean up; the test proves nothing")

            // Proxy 2's own cleanup skips its live job ...
            let dry = try await osbackupOffPool(["cleanup", "--os-cloud", "emulator-proxy-2", "--state", directory + "/state-2", "--dry-run"], environment: environment)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(!dry.stdout.contains("would remove"), "\(dry.stdout)")
            // ... and proxy 1's removes its dead job's resources and nothing of proxy 2's.
            let cleanup = try await osbackupOffPool(["cleanup", "--os-cloud", "emulator", "--state", directory + "/state-1"], environment: environment)
            #expect(cleanup.status == 0, "\(cleanup.stderr)")
            #expect(cleanup.stdout.contains("removing"), "\(cleanup.stdout)")
            let after = try await temporaryResources(directory)
            #expect(after.filter { $0.contains(proxy1) }.isEmpty, "proxy 1's leftovers: \(after)")
            #expect(after == secondsResources, "proxy 2's resources changed under its live job")

            kill(second.processIdentifier, SIGCONT)
            await waitForExit(of: second)
            let secondError = (try? String(contentsOfFile: directory + "/state-2.err", encoding: .utf8)) ?? ""
            #expect(second.terminationReason == .exit && second.terminationStatus == 0, "\(secondError)")
            #expect(try await temporaryResources(directory).isEmpty)
        }
    }
}
