import Foundation
import Testing
import TestSupport

/// `osbackup doctor` against the real Keystone of `make test` (no Nova or Cinder behind its catalog).
@Suite("osbackup doctor", .enabled(if: ProcessInfo.processInfo.environment["OSBACKUP_KEYSTONE_ENV"] != nil, "run through `make test`, which starts a real Keystone"))
struct DoctorCommandTests {
    static func keystone() throws -> [String: String] {
        try #require(RealKeystoneEnvironment.current).values
    }

    @Test("authentication passes, the unreachable services fail by name, the exit code is 1, no secret is printed")
    func againstRealKeystone() throws {
        let keystone = try Self.keystone()
        let result = try osbackupArray(
            ["doctor", "--log-level", "debug"],
            environment: [
                "OS_AUTH_URL": keystone["KEYSTONE_URL"]!, "OS_APPLICATION_CREDENTIAL_ID": keystone["KEYSTONE_APP_CRED_ID"]!,
                "OS_APPLICATION_CREDENTIAL_SECRET": keystone["KEYSTONE_APP_CRED_SECRET"]!,
                "OSBACKUP_METADATA_URL": "http://127.0.0.1:9/openstack/latest/meta_data.json",
            ])
        #expect(result.status == 1)
        #expect(result.stdout.contains("ok   authentication: user \(keystone["KEYSTONE_USER"]!), project \(keystone["KEYSTONE_PROJECT"]!)"))
        #expect(result.stdout.contains("FAIL compute: compute GET /v2.1 failed"))
        #expect(result.stdout.contains("FAIL block-storage"))
        #expect(result.stdout.contains("FAIL proxy server: no proxy server id"))
        #expect(result.stdout.contains("3 of 5 checks failed"))
        for secret in [keystone["KEYSTONE_APP_CRED_SECRET"]!, keystone["KEYSTONE_PASSWORD"]!] {
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        }
        #expect(result.stderr.contains("osb-path=/v3/auth/tokens"), "debug logging shows the calls")
    }

    @Test("a wrong secret fails authentication with exit 1 and the secret nowhere")
    func wrongSecret() throws {
        let keystone = try Self.keystone()
        let result = try osbackupArray(
            ["doctor"],
            environment: [
                "OS_AUTH_URL": keystone["KEYSTONE_URL"]!, "OS_APPLICATION_CREDENTIAL_ID": keystone["KEYSTONE_APP_CRED_ID"]!,
                "OS_APPLICATION_CREDENTIAL_SECRET": "not-the-secret-Qx7",
            ])
        #expect(result.status == 1)
        #expect(result.stdout.contains("FAIL authentication: identity POST /v3/auth/tokens answered 401"))
        #expect(!result.stdout.contains("not-the-secret-Qx7") && !result.stderr.contains("not-the-secret-Qx7"))
    }

    @Test("a configuration error exits 2 naming the key")
    func configurationError() throws {
        let result = try osbackupArray(["doctor"], environment: ["OS_AUTH_URL": "http://127.0.0.1:1/v3", "OS_USERNAME": "u"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("password"))
    }
}

@Test("doctor passes every check against `osbackup emulator serve` and the clouds.yaml it writes")
func doctorAgainstEmulator() async throws {
    try await withTemporaryDirectory { directory in
        let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/emulator/demo.yaml").path
        // The first line of stdout is the auth URL, printed once the emulator listens.
        let serve = try await EmulatorProcess(["--state", "\(directory)/state", "--seed", seed, "--clouds-yaml", "\(directory)/clouds.yaml"])
        defer { serve.stop() }
        #expect(serve.authURL.hasSuffix("/v3"))
        let result = try osbackupArray(
            ["doctor", "--os-cloud", "emulator"], environment: ["OS_CLIENT_CONFIG_FILE": "\(directory)/clouds.yaml"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("ok   proxy server: backup-proxy"))
        #expect(result.stdout.contains("all 5 checks passed"))
        #expect(!result.stdout.contains("admin-secret") && !result.stderr.contains("admin-secret"))
    }
}
