import Dispatch
public import Foundation

/// Runs a program to its end off the cooperative thread pool (Foundation's `waitUntilExit` must not
/// block it); returns the exit status and the standard output and error, interleaved.
public func runProgram(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
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

/// Runs blocking `body` on a thread of its own and waits for it without holding a thread of the
/// cooperative pool or of Dispatch's global queues (both are as wide as the machine's cores, and tests
/// that block them starve the tests beside them in a parallel run).
public func onOwnThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// Waits, on a thread of its own, until `process` has ended (Foundation's `waitUntilExit` would hold a
/// pool thread for as long, starving the tests that run beside it).
public func waitForExit(of process: Process) async {
    _ = try? await onOwnThread { process.waitUntilExit() }
}
