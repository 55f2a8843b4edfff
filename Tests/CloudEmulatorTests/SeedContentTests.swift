import CloudEmulator
import Foundation
import Testing
import TestSupport

/// Seed content generators, checked with real tools: a filesystem made by mkfs is read back with
/// e2fsprogs' own e2fsck, debugfs and dumpe2fs.
@Suite("seed content")
struct SeedContentTests {
    static let seedYAML = """
        projects: [{name: p}]
        users: [{name: u, password: pw, roles: {p: [admin]}}]
        volumes:
          - name: fs-volume
            project: p
            size: 8
            content:
              - {text: "boot\\n", length: 1M}
              - filesystem: ext4
                length: 4M
                label: data
                files: {"etc/hostname": "web-1\\n", "www/index.html": "hello from a real ext4\\n"}
              - {text: "tail", length: 4K}
        """

    /// Seeds a fresh state directory and returns the bytes of volume `name`.
    static func seededVolume(_ yaml: String, name: String, in directory: String) throws -> Data {
        let configuration = EmulatorConfiguration(stateDirectory: directory, sizeUnit: .mebibyte)
        _ = try CloudEmulator(configuration: configuration, seed: try EmulatorSeed.parse(yaml: yaml), logger: testLogger)
        return try Data(contentsOf: URL(fileURLWithPath: "\(directory)/volumes/\(EmulatorSeed.volumeID(name)).img"))
    }

    @Test("an ext4 filesystem with files, at an offset, is valid, readable, labelled, and the same every time")
    func ext4Filesystem() async throws {
        try await withTemporaryDirectory { directory in
            let volume = try Self.seededVolume(Self.seedYAML, name: "fs-volume", in: directory + "/a")
            #expect(volume.count == 8 << 20)
            #expect(volume.prefix(5) == Data("boot\n".utf8))
            #expect(volume.subdata(in: (5 << 20)..<((5 << 20) + 4)) == Data("tail".utf8))
            let filesystem = directory + "/fs.img"
            try volume.subdata(in: (1 << 20)..<(5 << 20)).write(to: URL(fileURLWithPath: filesystem))

            let (fsck, fsckOutput) = try await runProgram("/sbin/e2fsck", ["-f", "-n", filesystem])
            #expect(fsck == 0, "e2fsck: \(fsckOutput)")
            let (_, file) = try await runProgram("/sbin/debugfs", ["-R", "cat /www/index.html", filesystem])
            #expect(file.contains("hello from a real ext4\n"))
            let (_, hostname) = try await runProgram("/sbin/debugfs", ["-R", "cat /etc/hostname", filesystem])
            #expect(hostname.contains("web-1\n"))
            let (_, header) = try await runProgram("/sbin/dumpe2fs", ["-h", filesystem])
            #expect(header.contains("Filesystem volume name:   data"))

            // A second later, so times taken from the clock would differ.
            try await Task.sleep(for: .milliseconds(1100))
            let again = try Self.seededVolume(Self.seedYAML, name: "fs-volume", in: directory + "/b")
            #expect(again == volume, "the same seed gave a different filesystem")
        }
    }

    @Test("a filesystem whose mkfs is missing, or that does not fit, is refused by name")
    func refusals() throws {
        try withTemporaryDirectory { directory in
            let missing = Self.seedYAML.replacingOccurrences(of: "filesystem: ext4", with: "filesystem: nosuchfs")
                .replacingOccurrences(of: "files: {", with: "x-files: {")
            let error = #expect(throws: EmulatorError.self) { try Self.seededVolume(missing, name: "fs-volume", in: directory + "/a") }
            #expect(error?.description.contains("mkfs.nosuchfs is not installed") == true)

            let tooBig = Self.seedYAML.replacingOccurrences(of: "length: 4M", with: "length: 16M")
            let overflow = #expect(throws: EmulatorError.self) { try Self.seededVolume(tooBig, name: "fs-volume", in: directory + "/b") }
            #expect(overflow?.description.contains("does not fit in the volume size") == true)
        }
    }
}
