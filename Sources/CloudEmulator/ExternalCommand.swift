import Dispatch
import Foundation

/// Runs the system tools the emulator relies on (`cp`, `losetup`, `mkfs.*`) and turns a failure into
/// an ``EmulatorError`` that names the command, its exit status and what it printed.
enum ExternalCommand {
    /// Runs `executable` with `arguments` (and extra `environment` variables); returns its standard output.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], subject: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw EmulatorError.dataOperation(subject: subject, "cannot run \(executable): \(error)")
        }
        // Both pipes are drained at once: a child that fills one while we wait on the other would hang.
        let errorReader = errors.fileHandleForReading
        let errorText = CollectedOutput()
        let drained = DispatchGroup()
        drained.enter()
        DispatchQueue.global().async {
            errorText.data = errorReader.readDataToEndOfFile()
            drained.leave()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        let errorData = errorText.data
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EmulatorError.dataOperation(
                subject: subject,
                "\(executable) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): "
                    + String(decoding: errorData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The path of system tool `name` in the usual sbin and bin folders, or nil.
    static func find(_ name: String) -> String? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// The standard error of a child, filled by the thread that drains it.
private final class CollectedOutput: @unchecked Sendable {
    // Written by the draining thread before it leaves the group; read only after `wait()`.
    var data = Data()
}
