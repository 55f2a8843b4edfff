import Foundation

/// A real filesystem for a seed volume, made by the system's `mkfs.<type>` in a scratch file next to
/// the volume and copied into it at an offset, all-zero blocks skipped so the volume stays sparse.
///
/// ext2/3/4 can be filled with files (`mkfs -d`) and are reproducible: the UUID and hash seed derive
/// from the volume and offset, the creation time is fixed (`E2FSPROGS_FAKE_TIME`), and the times `mkfs -d`
/// copies from the scratch files (access and change times cannot be set there) are reset with `debugfs`.
struct FilesystemImage {
    /// `ext4`, `ext3`, `ext2`, `vfat`, `xfs`, ... (`mkfs.<type>` must be installed).
    var type: String
    /// Its size in bytes.
    var length: Int64
    /// Its label.
    var label: String?
    /// Path → text content; ext2/3/4 only.
    var files: [String: String]

    /// A fixed time for reproducible ext images: 2024-01-01T00:00:00Z.
    private static let fixedTime: TimeInterval = 1_704_067_200
    private var isExt: Bool { ["ext2", "ext3", "ext4"].contains(type) }

    /// Makes the filesystem and writes it into `handle` (the file at `volumePath`) at `offset`.
    func write(into handle: FileHandle, at offset: Int64, volumePath: String) throws {
        guard type.allSatisfy({ $0.isLetter || $0.isNumber }), let mkfs = ExternalCommand.find("mkfs.\(type)") else {
            throw EmulatorError.dataOperation(
                subject: volumePath,
                "filesystem '\(type)': mkfs.\(type) is not installed (ext2/3/4 come with e2fsprogs); install it or drop the segment")
        }
        if !files.isEmpty && !isExt {
            throw EmulatorError.dataOperation(subject: volumePath, "filesystem '\(type)': files can only be put in ext2, ext3 or ext4")
        }
        let scratch = volumePath + ".mkfs-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: scratch + ".img")
            try? FileManager.default.removeItem(atPath: scratch + ".files")
        }
        let image = scratch + ".img"
        guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, off_t(length)) == 0 else {
            throw EmulatorError.dataOperation(subject: image, "cannot create the scratch file for mkfs.\(type)")
        }
        var arguments: [String] = []
        var environment: [String: String] = [:]
        if isExt {
            let uuid = Identifiers.stableUUID("filesystem", "\((volumePath as NSString).lastPathComponent)@\(offset)")
            arguments = ["-F", "-q", "-U", uuid, "-E", "hash_seed=\(uuid),nodiscard"]
            environment["E2FSPROGS_FAKE_TIME"] = String(Int(Self.fixedTime))
            if !files.isEmpty { arguments += ["-d", try populate(scratch + ".files")] }
        }
        if let label { arguments += [type == "vfat" ? "-n" : "-L", label] }
        try ExternalCommand.run(mkfs, arguments + [image], environment: environment, subject: volumePath)
        if isExt && !files.isEmpty {
            try resetTimes(image: image, tree: scratch + ".files", commands: scratch + ".debugfs", environment: environment)
        }
        try copyNonZero(from: image, into: handle, at: offset)
    }

    /// Sets every time of the root folder and of each copied file and folder to the fixed time.
    private func resetTimes(image: String, tree: String, commands: String, environment: [String: String]) throws {
        guard let debugfs = ExternalCommand.find("debugfs") else {
            throw EmulatorError.dataOperation(subject: image, "debugfs (e2fsprogs) is not installed")
        }
        defer { try? FileManager.default.removeItem(atPath: commands) }
        let paths = ["/"] + (FileManager.default.enumerator(atPath: tree)?.compactMap { $0 as? String }.sorted().map { "/" + $0 } ?? [])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMddHHmmss"
        let stamp = formatter.string(from: Date(timeIntervalSince1970: Self.fixedTime))
        let script = paths.flatMap { path in
            ["atime", "ctime", "mtime", "crtime"].map { "set_inode_field \"\(path)\" \($0) \(stamp)" }
        }.joined(separator: "\n")
        try Data((script + "\n").utf8).write(to: URL(fileURLWithPath: commands))
        try ExternalCommand.run(debugfs, ["-w", "-f", commands, image], environment: environment, subject: image)
    }

    /// Writes `files` under `directory` with a fixed modification time; returns the directory.
    private func populate(_ directory: String) throws -> String {
        let manager = FileManager.default
        for (path, text) in files.sorted(by: { $0.key < $1.key }) {
            let relative = path.split(separator: "/").filter { $0 != "." && $0 != ".." && !$0.isEmpty }.joined(separator: "/")
            guard !relative.isEmpty else { continue }
            guard !relative.contains("\"") && !relative.contains(where: \.isNewline) else {
                throw EmulatorError.dataOperation(subject: path, "a seed file name may not contain a double quote or a line break")
            }
            let target = directory + "/" + relative
            try manager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard manager.createFile(atPath: target, contents: Data(text.utf8)) else {
                throw EmulatorError.dataOperation(subject: target, "cannot write a file for the filesystem")
            }
        }
        let fixed = Date(timeIntervalSince1970: Self.fixedTime)
        if let walker = manager.enumerator(atPath: directory) {
            for case let relative as String in walker {
                try manager.setAttributes([.modificationDate: fixed], ofItemAtPath: directory + "/" + relative)
            }
        }
        return directory
    }

    /// Copies `image` into `handle` at `offset`, 64 KiB at a time, leaving all-zero chunks as holes.
    private func copyNonZero(from image: String, into handle: FileHandle, at offset: Int64) throws {
        guard let source = FileHandle(forReadingAtPath: image) else {
            throw EmulatorError.dataOperation(subject: image, "cannot read the filesystem made by mkfs.\(type)")
        }
        defer { try? source.close() }
        var position: Int64 = 0
        while let chunk = try source.read(upToCount: 1 << 16), !chunk.isEmpty {
            if chunk.contains(where: { $0 != 0 }) {
                try handle.seek(toOffset: UInt64(offset + position))
                try handle.write(contentsOf: chunk)
            }
            position += Int64(chunk.count)
        }
    }
}
