import Foundation

/// A real loop block device over a file, for tests that need a block device (root only).
public struct LoopDevice: Sendable {
    /// The device path, e.g. `/dev/loop3`.
    public let path: String

    /// Whether this process may create loop devices (root with `losetup` present).
    public static var isAvailable: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/losetup")
            || geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/sbin/losetup")
    }

    /// Attaches `file` to a free loop device.
    public static func attach(_ file: String) throws -> LoopDevice {
        let output = try run(["--find", "--show", file])
        return LoopDevice(path: output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Detaches the device.
    public func detach() throws {
        _ = try Self.run(["--detach", path])
    }

    private static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/losetup") ? "/usr/sbin/losetup" : "/sbin/losetup")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "losetup \(arguments) failed"])
        }
        return String(decoding: data, as: UTF8.self)
    }
}
