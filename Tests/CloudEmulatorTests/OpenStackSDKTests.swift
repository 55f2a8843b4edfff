import CloudEmulator
import Foundation
import Testing
import TestSupport

/// A real OpenStack client (Debian's python3-openstacksdk) drives the in-process emulator through a
/// clouds.yaml: any disagreement is the emulator's bug.
@Suite("openstacksdk against the emulator")
struct OpenStackSDKTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("authenticate, list servers, volume, snapshot, volume from snapshot, attach to the proxy, detach, delete")
    func lifecycle() async throws {
        try await withTestCloud { cloud in
            let clouds = cloud.running.stateDirectory + "/clouds.yaml"
            try cloud.running.cloudsYAML().write(toFile: clouds, atomically: true, encoding: .utf8)
            try await Self.check(cloud.running, cloudsYAML: clouds)
        }
    }

    /// Runs `scripts/openstacksdk-emulator-check` on `cloudsYAML` and checks that it passed and left
    /// no volume or snapshot behind.
    static func check(_ running: RunningEmulator, cloudsYAML: String) async throws {
        try ensureOpenStackSDK()
        let (status, output) = try await runProgram(
            "/usr/bin/python3", [repository + "/scripts/openstacksdk-emulator-check", "emulator"],
            environment: ["OS_CLIENT_CONFIG_FILE": cloudsYAML])
        #expect(status == 0, "openstacksdk-emulator-check failed:\n\(output)")
        #expect(output.contains("openstacksdk: ok"), "\(output)")
        let inventory = try running.inventory()
        #expect(!inventory.volumes.contains { $0.name?.hasPrefix("sdk-") == true }, "leaked volumes")
        #expect(inventory.snapshots.isEmpty, "leaked snapshots")
    }

    /// Installs python3-openstacksdk with apt when it is missing (root only), else fails saying how.
    static func ensureOpenStackSDK() throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        check.arguments = ["-c", "import openstack"]
        check.standardError = FileHandle.nullDevice
        try check.run()
        check.waitUntilExit()
        if check.terminationStatus == 0 { return }
        guard geteuid() == 0 else {
            throw TestFailure("python3-openstacksdk is missing: apt-get install -y --no-install-recommends python3-openstacksdk")
        }
        let install = Process()
        install.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
        install.arguments = ["install", "-y", "--no-install-recommends", "python3-openstacksdk"]
        try install.run()
        install.waitUntilExit()
        guard install.terminationStatus == 0 else {
            throw TestFailure("apt-get install python3-openstacksdk failed (\(install.terminationStatus))")
        }
    }
}
