import CloudEmulator
import Foundation
import Testing

/// A real OpenStack client (Debian's python3-openstacksdk) drives the in-process emulator through a
/// clouds.yaml: any disagreement is the emulator's bug.
@Suite("openstacksdk against the emulator")
struct OpenStackSDKTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("authenticate, list servers, volume, snapshot, volume from snapshot, attach to the proxy, detach, delete")
    func lifecycle() async throws {
        try Self.ensureOpenStackSDK()
        try await withTestCloud { cloud in
            let clouds = cloud.running.stateDirectory + "/clouds.yaml"
            try cloud.running.cloudsYAML().write(toFile: clouds, atomically: true, encoding: .utf8)
            let (status, output) = try await Self.run(
                "/usr/bin/python3", [Self.repository + "/scripts/openstacksdk-emulator-check", "emulator"],
                environment: ["OS_CLIENT_CONFIG_FILE": clouds])
            #expect(status == 0, "openstacksdk-emulator-check failed:\n\(output)")
            #expect(output.contains("openstacksdk: ok"), "\(output)")
            let inventory = try cloud.running.inventory()
            #expect(!inventory.volumes.contains { $0.name?.hasPrefix("sdk-") == true }, "leaked volumes")
            #expect(inventory.snapshots.isEmpty, "leaked snapshots")
        }
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

    /// Runs a program off the cooperative pool; returns its status and combined output.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]) async throws -> (Int32, String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: executable)
                    process.arguments = arguments
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    process.standardError = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (process.terminationStatus, String(decoding: data, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
