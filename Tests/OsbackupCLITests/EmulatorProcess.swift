import Foundation

/// A running `osbackup emulator serve`.
final class EmulatorProcess: @unchecked Sendable {
    // Written once in init, then only read.
    let process = Process()
    let authURL: String

    /// Starts the emulator and waits for the auth URL on the first line of its standard output.
    init(_ arguments: [String]) async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osbackup")
        process.executableURL = binary
        process.arguments = ["emulator", "serve", "--log-level", "critical"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = output.fileHandleForReading
        authURL = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var line = Data()
                while let byte = try? handle.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line.append(byte) }
                continuation.resume(returning: String(decoding: line, as: UTF8.self))
            }
        }
    }

    /// Sends SIGTERM if it still runs (a failed test must not leave it behind).
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    var baseURL: String { String(authURL.dropLast(3)) }
    var port: Int { Int(baseURL.split(separator: ":").last ?? "") ?? 0 }

    /// Waits (off the cooperative pool) for the process to end; returns its exit status.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [process] in
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }
}
