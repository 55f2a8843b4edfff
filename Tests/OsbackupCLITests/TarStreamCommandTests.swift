import Foundation
import Testing
import TestSupport

/// `osbackup backup --to -` in a shell pipeline and `osbackup restore --from TARFILE|-`, as an operator
/// runs them, against `osbackup emulator serve`, in the C locale.
@Suite("osbackup backup --to - / restore --from TARFILE")
struct TarStreamCommandTests {
    static let seedYAML = """
        projects: [{name: admin}]
        users: [{name: admin, password: admin-secret, roles: {admin: [admin]}, default_project: admin}]
        flavors: [{name: m1.small, vcpus: 1, ram: 2048, disk: 20}]
        servers:
          - {name: backup-proxy, project: admin, flavor: m1.small, proxy: true, volumes: [{name: proxy-root, size: 4}]}
          - name: "café-1"
            project: admin
            flavor: m1.small
            volumes: [{name: "café-root", size: 3, content: [{random: 2M, seed: 4}]}]
        """

    /// Runs a bash script with the emulator's clouds.yaml; returns its status and output.
    static func shell(_ script: String, directory: String) async throws -> (Int32, String) {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osbackup").path
        return try await runProgram(
            "/bin/bash", ["-c", "set -o pipefail\n" + script],
            environment: [
                "OSB": binary, "D": directory, "LC_ALL": "C", "OSBACKUP_LOG_LEVEL": "error",
                "OS_CLIENT_CONFIG_FILE": "\(directory)/clouds.yaml", "OS_CLOUD": "emulator",
            ])
    }

    @Test("backup --to - | zstd, then restore --from the .tar.zst and from standard input: byte-exact; the job id goes to standard error")
    func pipeline() async throws {
        try await withTemporaryDirectory { directory in
            try Self.seedYAML.write(toFile: "\(directory)/seed.yaml", atomically: true, encoding: .utf8)
            let serve = try await EmulatorProcess([
                "--state", "\(directory)/cloud", "--seed", "\(directory)/seed.yaml", "--size-unit", "mib",
                "--transition-delay", "0.02", "--clouds-yaml", "\(directory)/clouds.yaml",
            ])
            defer { serve.stop() }

            let (status, output) = try await Self.shell(
                """
                "$OSB" backup --to - --state "$D/state" --level full 2>"$D/backup.err" | zstd -q >"$D/full.tar.zst"
                echo "job $(tail -1 "$D/backup.err")"
                "$OSB" restore --from "$D/full.tar.zst" --to-dir "$D/out"
                zstd -dc "$D/full.tar.zst" | "$OSB" restore --from - --to-dir "$D/out-stdin"
                ls -A "$D/out" "$D/out-stdin" "$D/state/spool"
                """, directory: directory)
            #expect(status == 0, "\(output)")
            let jobLine = try #require(output.split(separator: "\n").first { $0.hasPrefix("job ") })
            #expect(UUID(uuidString: String(jobLine.dropFirst(4))) != nil, "\(output)")
            #expect(!output.contains(".osbackup-spool"), "the restore spool is removed: \(output)")

            for target in ["out", "out-stdin"] {
                let raws = try FileManager.default.subpathsOfDirectory(atPath: "\(directory)/\(target)").filter { $0.hasSuffix(".raw") }
                #expect(raws.count == 1, "\(raws)")
                for raw in raws {
                    #expect(raw.contains("café-root_"))
                    let volumeID = String(raw.suffix(".raw".count + 36).prefix(36))
                    let restored = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(target)/\(raw)"))
                    #expect(restored == (try Data(contentsOf: URL(fileURLWithPath: "\(directory)/cloud/volumes/\(volumeID).img"))))
                }
            }
        }
    }

    @Test("a reader that goes away is a clear error (exit 1), not a silent SIGPIPE death; the spool is removed")
    func brokenPipe() async throws {
        try await withTemporaryDirectory { directory in
            try Self.seedYAML.write(toFile: "\(directory)/seed.yaml", atomically: true, encoding: .utf8)
            let serve = try await EmulatorProcess([
                "--state", "\(directory)/cloud", "--seed", "\(directory)/seed.yaml", "--size-unit", "mib",
                "--transition-delay", "0.02", "--clouds-yaml", "\(directory)/clouds.yaml",
            ])
            defer { serve.stop() }
            let (_, output) = try await Self.shell(
                """
                "$OSB" backup --to - --state "$D/state" --level full 2>"$D/backup.err" | head -c 1000 >/dev/null
                echo "status ${PIPESTATUS[0]}"
                cat "$D/backup.err"
                ls -A "$D/state/spool"
                """, directory: directory)
            #expect(output.contains("status 1"), "\(output)")
            #expect(output.contains("the reader of the stream went away"), "\(output)")
            #expect(output.contains("standard output"), "\(output)")
        }
    }
}
