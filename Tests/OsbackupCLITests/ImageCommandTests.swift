import Foundation
import Testing
import TestSupport

/// Runs the built `osbackup` binary as an operator would and checks output and exit codes.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var lastLine: String { stdout.split(separator: "\n").last.map(String.init) ?? "" }
}

func osbackup(_ arguments: String...) throws -> CommandResult {
    try osbackupArray(arguments)
}

func osbackupArray(_ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
    // `swift test` builds the executable beside the test bundle.
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("osbackup")
    let candidates = [binary.path, Bundle.main.bundleURL.appendingPathComponent("osbackup").path]
    guard let path = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "osbackup binary not found in \(candidates)"])
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment {
        // Only what the test gives, plus PATH and HOME: no OS_* from the developer's shell leaks in.
        let inherited = ProcessInfo.processInfo.environment
        process.environment = environment.merging(["PATH": inherited["PATH"] ?? "/usr/bin:/bin", "HOME": inherited["HOME"] ?? "/root"]) { $1 }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

@Suite("osbackup image")
struct ImageCommandTests {
    @Test("backup prints the id last, restore and verify succeed, the restore is byte-exact")
    func backupRestoreVerify() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 41)
            var content = DiskImage.content(size: 700_000, using: &generator)
            let source = "\(directory)/disk.img"
            try DiskImage.write(content, to: source)
            let full = try osbackup(
                "image", "backup", source, "--state", "\(directory)/state", "--to", "\(directory)/repo", "--level", "full",
                "--block-size", "4096")
            #expect(full.status == 0, "\(full.stderr)")
            let fullID = full.lastLine
            #expect(UUID(uuidString: fullID) != nil)
            #expect(FileManager.default.fileExists(atPath: "\(directory)/repo/\(fullID)/manifest.json"))

            DiskImage.mutate(&content, blockSize: 4096, changes: 5, using: &generator)
            try DiskImage.write(content, to: source)
            let incremental = try osbackup(
                "image", "backup", source, "--state", "\(directory)/state", "--to", "\(directory)/repo", "--compression", "none")
            #expect(incremental.status == 0, "\(incremental.stderr)")
            #expect(incremental.stdout.hasPrefix("incremental backup"))

            let verify = try osbackup("image", "verify", "--from", "\(directory)/repo")
            #expect(verify.status == 0)
            #expect(verify.stdout.contains("chain of 2"))

            let restore = try osbackup("image", "restore", "--from", "\(directory)/repo", "--to", "\(directory)/out.img")
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try DiskImage.read("\(directory)/out.img") == content)

            let older = try osbackup(
                "image", "restore", "--from", "\(directory)/repo", "--backup", fullID, "--to", "\(directory)/old.img")
            #expect(older.status == 0)

            let list = try osbackup("image", "list", "--from", "\(directory)/repo")
            #expect(list.stdout.split(separator: "\n").count == 2)
        }
    }

    @Test("usage errors exit 2", arguments: [
        ["image", "backup", "/nonexistent"],  // missing --state and --to
        ["image", "backup", "/x", "--state", "/tmp/s", "--to", "/tmp/r", "--level", "weekly"],
        ["image", "backup", "/x", "--state", "/tmp/s", "--to", "/tmp/r", "--block-size", "1000"],
        ["image", "backup", "/x", "--state", "/tmp/s", "--to", "/tmp/r", "--compression", "lz4"],
        ["image", "backup", "/x", "--state", "/tmp/s", "--to", "/tmp/r", "--compression", "zstd:99"],
        ["image", "restore", "--from", "/tmp", "--backup", "not-a-uuid", "--to", "/tmp/x"],
        ["image", "verify", "--from", "/nonexistent-repository"],
        ["no-such-command"],
    ])
    func usageErrors(arguments: [String]) throws {
        let result = try osbackupArray(arguments)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test("a damaged backup file exits 1 with one line naming it")
    func damagedFile() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 42)
            try DiskImage.write(DiskImage.content(size: 100_000, using: &generator), to: "\(directory)/disk.img")
            let full = try osbackup(
                "image", "backup", "\(directory)/disk.img", "--state", "\(directory)/state", "--to", "\(directory)/repo",
                "--block-size", "4096")
            let folder = "\(directory)/repo/\(full.lastLine)/@local/image"
            let bmpsha = try FileManager.default.contentsOfDirectory(atPath: folder).first { $0.hasSuffix(".bmpsha") }!
            try corruptByte(of: "\(folder)/\(bmpsha)", at: 140)
            for command in [["image", "verify", "--from", "\(directory)/repo"],
                            ["image", "restore", "--from", "\(directory)/repo", "--to", "\(directory)/out.img"]] {
                let result = try osbackupArray(command)
                #expect(result.status == 1)
                let lines = result.stderr.split(separator: "\n")
                #expect(lines.count == 1)
                #expect(lines.first?.contains("\(folder)/\(bmpsha): checksum does not match") == true)
            }
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/out.img"))
        }
    }

    @Test("help exits 0")
    func help() throws {
        let result = try osbackupArray(["image", "backup", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("--block-size"))
    }
}

