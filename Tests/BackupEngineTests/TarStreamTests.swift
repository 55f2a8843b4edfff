import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

/// A cloud whose names are UTF-8 beyond ASCII, with a bidi override: the proxy and one tenant server.
private let utf8Seed = """
    projects:
      - name: admin
      - name: tenant
        quota: {volumes: 30, snapshots: 30, gigabytes: 1000}
    users:
      - name: admin
        password: admin-secret
        roles: {admin: [admin], tenant: [admin]}
        default_project: admin
    flavors:
      - {name: m1.small, vcpus: 1, ram: 2048, disk: 20}
    servers:
      - name: backup-proxy
        project: admin
        flavor: m1.small
        proxy: true
        volumes:
          - {name: proxy-root, size: 4}
      - name: "café-日本-\\u202Egnp.exe"
        project: tenant
        flavor: m1.small
        volumes:
          - name: "données-ü"
            size: 2
            content: [{random: 192K, seed: 3}]
    """

private let utf8ServerName = "café-日本-\u{202E}gnp.exe"

/// Runs one cloud job into a tar file through ``TarSink``.
private func runTarJob(_ request: CloudBackupRequest, _ cloud: CloudServices, tar: String) async throws -> CloudBackupReport {
    let jobID = BackupID.generate()
    let sink = try TarSink(path: tar, spoolDirectory: "\(request.stateDirectory)/spool", jobID: jobID, logger: testLogger)
    return try await CloudBackupJob.run(request, cloud: cloud, sink: sink, jobID: jobID, logger: testLogger)
}

/// The entries GNU tar lists, in the locale given.
private func gnuTarList(_ tar: String, locale: String = "C.UTF-8") async throws -> [String] {
    let (status, output) = try await runProgram("/bin/tar", ["-tf", tar], environment: ["LC_ALL": locale])
    #expect(status == 0, "tar -tf \(tar): \(output)")
    return output.split(separator: "\n").map(String.init)
}

/// A one-volume image job written as a tar (no cloud): a Full of a 300 kB image at 4 KiB blocks.
private func imageTar(_ directory: String, abandon: Bool = false) throws -> (tar: String, record: VolumeBackupRecord, image: [UInt8]) {
    var generator = SeededGenerator(seed: 5)
    let image = DiskImage.content(size: 300_000, using: &generator)
    try DiskImage.write(image, to: "\(directory)/disk.img")
    let volumeID = try VolumeID.validated(UUID().uuidString.lowercased())
    let backupID = BackupID.generate()
    let tar = "\(directory)/image.tar"
    let sink = try TarSink(path: tar, spoolDirectory: "\(directory)/state/spool", jobID: backupID, logger: testLogger)
    let state = try VolumeStateStore(directory: "\(directory)/state")
    let scanned = try VolumeScan.run(
        VolumeScanRequest(
            sourcePath: "\(directory)/disk.img", sourceDescription: "\(directory)/disk.img", volumeID: volumeID,
            paths: BackupNamespace.volumeFiles(folder: BackupNamespace.images, volumeID: volumeID.rawValue, volumeName: "disk.img"),
            level: .full, blockSize: 4096),
        backupID: backupID, state: state, sink: sink, logger: testLogger)
    if abandon {
        sink.abandon()
    } else {
        try sink.finish(
            BackupJobManifest(
                jobID: "\(backupID)", kind: "image", createdAt: scanned.record.createdAt, requestedLevel: "full",
                volumes: [scanned.record], files: []))
    }
    scanned.discardMap(state: state)
    return (tar, scanned.record, image)
}

/// Writes a tar with Python's tarfile module (the entries a hostile stream may hold).
private func hostileTar(_ kind: String, at path: String, outside: String) async throws {
    let script = """
        import io, sys, tarfile
        kind, out, outside = sys.argv[1], sys.argv[2], sys.argv[3]
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
            def add(name, data=b"x", type=tarfile.REGTYPE, link=""):
                info = tarfile.TarInfo(name)
                info.type = type
                info.linkname = link
                info.size = len(data) if type == tarfile.REGTYPE else 0
                t.addfile(info, io.BytesIO(data) if type == tarfile.REGTYPE else None)
            add("@openstack/nova/server/fine.name", b"fine")
            if kind == "dotdot": add("../escape")
            elif kind == "inner-dotdot": add("@openstack/nova/../../escape")
            elif kind == "absolute": add(outside + "/escape")
            elif kind == "symlink":
                add("@openstack/nova/server/link", type=tarfile.SYMTYPE, link=outside)
                add("@openstack/nova/server/link/escape")
            elif kind == "hardlink": add("@openstack/nova/server/hard", type=tarfile.LNKTYPE, link="/etc/passwd")
            elif kind == "device": add("@openstack/nova/server/null", type=tarfile.CHRTYPE)
            elif kind == "outside-namespace": add("etc/escape")
            elif kind == "duplicate": add("@openstack/nova/server/fine.name", b"again")
        """
    let (status, output) = try await runProgram("/usr/bin/python3", ["-c", script, kind, path, outside])
    #expect(status == 0, "\(output)")
}

@Suite("Tar streams: backup --to - and restore --from TARFILE")
struct TarStreamTests {
    @Test("Full to a tar, change, Incremental to a second tar; both (gzip, zstd) restore byte-exact; GNU tar lists and extracts them")
    func fullIncrementalThroughTars() async throws {
        try await withCloudJob { running, cloud, directory in
            let fullTar = "\(directory)/full.tar"
            let full = try await runTarJob(request(directory, running, level: .full), cloud, tar: fullTar)
            #expect(full.allSaved, "\(full.volumes)")
            #expect(full.volumes.count == 4)
            try expectNoDebris(running)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state/spool").isEmpty, "spool files left")

            let webRoot = EmulatorSeed.volumeID("root/../x")
            try change(running, volumeID: webRoot, at: 3 << 20, Data("changed after the Full".utf8))

            let incrementalTar = "\(directory)/incremental.tar"
            let incremental = try await runTarJob(request(directory, running, level: .incremental), cloud, tar: incrementalTar)
            #expect(incremental.allSaved)
            #expect(incremental.volumes.allSatisfy { $0.level == "incremental" })
            #expect(incremental.volumes.first { $0.volumeID == webRoot }?.bytesStored == 65536)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state/spool").isEmpty)

            // GNU tar: relative namespace paths, nothing else; it extracts them.
            let listed = try await gnuTarList(fullTar)
            #expect(listed.allSatisfy { $0.hasPrefix("@openstack/") }, "\(listed)")
            #expect(listed.filter { $0.hasSuffix(".bmp") }.count == 4)
            let (extracted, extractOutput) = try await runProgram("/bin/tar", ["-xf", fullTar, "-C", directory])
            #expect(extracted == 0, "\(extractOutput)")
            for name in listed { #expect(FileManager.default.fileExists(atPath: "\(directory)/\(name)"), "\(name)") }

            // Compressed copies, read through libarchive's filters.
            #expect(try await runProgram("/bin/gzip", ["-k", fullTar]).0 == 0)
            #expect(try await runProgram("/usr/bin/zstd", ["-q", incrementalTar, "-o", "\(incrementalTar).zst"]).0 == 0)

            let spool = try BackupRepository(directory: "\(directory)/spool-repo", create: true)
            let fullJob = try spool.importTar(.file("\(fullTar).gz"))
            let incrementalJob = try spool.importTar(.file("\(incrementalTar).zst"))
            #expect(Set(fullJob.files + fullJob.volumes.flatMap { [$0.regionsFile, $0.digestsFile, $0.dataFile] }) == Set(listed))
            for (report, job) in [(full, fullJob), (incremental, incrementalJob)] {
                #expect(job.jobID == report.jobID, "a stream's job keeps the id the backup printed")
                #expect(job.kind == "cloud")
                #expect(job.volumes.count == report.volumes.count)
                for volume in report.volumes {
                    let record = try #require(job.volumes.first { $0.backupID == volume.backupID }, "\(volume.volumeID)")
                    #expect(record.level == volume.level)
                    #expect(record.dataBytes == volume.bytesStored)
                    #expect(record.serverID == volume.serverID)
                    #expect(record.volumeID == volume.volumeID)
                    #expect(record.cinderSize != nil)
                }
            }
            #expect(incrementalJob.requestedLevel == "incremental")

            let restored = try RestoreToDirectory.run(
                repository: spool, jobID: incrementalJob.id, servers: [], volumes: [], target: "\(directory)/out", logger: testLogger)
            #expect(restored.count == 4)
            #expect(restored.allSatisfy { $0.chainLength == 2 })
            for volume in restored {
                let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == original, "\(volume.path)")
            }
            let dbID = EmulatorSeed.serverID("db-1")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/out/@openstack/nova/server/\(dbID)/\(dbID).conf"))

            // The Incremental alone is not a chain.
            let alone = try BackupRepository(directory: "\(directory)/alone", create: true)
            let aloneJob = try alone.importTar(.file(incrementalTar))
            let error = #expect(throws: BlockDeltaError.self) {
                _ = try RestoreToDirectory.run(
                    repository: alone, jobID: aloneJob.id, servers: [], volumes: [], target: "\(directory)/out2", logger: testLogger)
            }
            #expect(error?.description.contains("not in this repository") == true, "\(String(describing: error))")
        }
    }

    @Test("UTF-8 and bidi names survive the stream in the C locale: GNU tar lists and extracts them, the .name keeps the original")
    func utf8Names() async throws {
        try await withCloudJob(seed: utf8Seed) { running, cloud, directory in
            let tar = "\(directory)/utf8.tar"
            let report = try await runTarJob(request(directory, running, level: .full), cloud, tar: tar)
            #expect(report.allSaved, "\(report.volumes)")
            let listed = try await gnuTarList(tar)
            let serverID = EmulatorSeed.serverID(utf8ServerName)
            let nameEntry = try #require(listed.first { $0.hasPrefix("@openstack/nova/server/\(serverID)_") }, "\(listed)")
            #expect(nameEntry.contains("café-日本"), "\(nameEntry)")
            #expect(!nameEntry.contains("\u{202E}"))
            #expect(listed.contains { $0.contains("données-ü_") && $0.hasSuffix(".bvmdk") }, "\(listed)")

            // GNU tar in the C locale writes the UTF-8 bytes as they are.
            let (status, output) = try await runProgram("/bin/tar", ["-xf", tar, "-C", directory], environment: ["LC_ALL": "C"])
            #expect(status == 0, "\(output)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/\(nameEntry)"))

            let spool = try BackupRepository(directory: "\(directory)/spool-repo", create: true)
            let job = try spool.importTar(.file(tar))
            #expect(job.volumes.first?.volumeName.hasPrefix("données-ü") == true, "\(job.volumes)")
            let restored = try RestoreToDirectory.run(
                repository: spool, jobID: job.id, servers: [], volumes: [], target: "\(directory)/out", logger: testLogger)
            let volume = try #require(restored.first)
            #expect(volume.path.contains("données-ü"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID))))
            #expect(try String(contentsOfFile: "\(directory)/out/\(nameEntry)", encoding: .utf8) == utf8ServerName)
        }
    }

    @Test(
        "a hostile stream is refused with the entry named, and nothing is written outside the spool",
        arguments: [
            ("dotdot", "../escape"), ("inner-dotdot", "@openstack/nova/../../escape"), ("absolute", "/escape"),
            ("symlink", "a symbolic link"), ("hardlink", "a hard link"), ("device", "a device"),
            ("outside-namespace", "etc/escape"), ("duplicate", "appears twice"),
        ])
    func hostileStreams(kind: String, expected: String) async throws {
        try await withTemporaryDirectory { directory in
            let outside = "\(directory)/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            let tar = "\(directory)/hostile.tar"
            try await hostileTar(kind, at: tar, outside: outside)
            let spool = try BackupRepository(directory: "\(directory)/sub/spool", create: true)
            let error = #expect(throws: BlockDeltaError.self) { _ = try spool.importTar(.file(tar)) }
            #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
            #expect(error?.description.hasPrefix(tar) == true)
            #expect(error?.isDataIntegrityError == true)
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/escape"))
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/sub/escape"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/sub/spool").isEmpty, "the refused stream's folder stays")
        }
    }

    @Test("an image job through a tar: the manifest rebuilt from the files matches the scan's record, the restore is byte-exact")
    func reconstruction() async throws {
        try await withTemporaryDirectory { directory in
            let (tar, record, image) = try imageTar(directory)
            let spool = try BackupRepository(directory: "\(directory)/spool", create: true)
            let job = try spool.importTar(.file(tar))
            #expect(job.kind == "image")
            #expect(job.jobID == record.backupID, "an image job's id is its one backup's id")
            var rebuilt = try #require(job.volumes.first)
            #expect(rebuilt.source == record.volumeID)
            rebuilt.source = record.source
            rebuilt.createdAt = record.createdAt
            #expect(rebuilt == record)
            let chain = try spool.chain(endingAt: nil)
            _ = try ChainRestorer.restore(chain: chain.map(\.files), to: "\(directory)/out.img", logger: testLogger)
            #expect(try DiskImage.read("\(directory)/out.img") == image)
            #expect(try spool.jobs().map(\.jobID) == [job.jobID])
        }
    }

    @Test("a truncated stream, a stream of a failed job and a non-tar are clean errors that leave nothing")
    func damagedStreams() async throws {
        try await withTemporaryDirectory { directory in
            let (tar, _, _) = try imageTar(directory)
            let size = try #require(try FileManager.default.attributesOfItem(atPath: tar)[.size] as? Int)
            try truncateFile(tar, to: size / 2 + 100)
            let spool = try BackupRepository(directory: "\(directory)/spool", create: true)
            let truncated = #expect(throws: BlockDeltaError.self) { _ = try spool.importTar(.file(tar)) }
            #expect(truncated?.description.contains("truncated") == true, "\(String(describing: truncated))")
            #expect(truncated?.description.hasPrefix(tar) == true)

            try FileManager.default.removeItem(atPath: "\(directory)/state")
            let (failedTar, _, _) = try imageTar(directory, abandon: true)
            #expect(try await gnuTarList(failedTar).last == TarSink.failureMarker)
            let failed = #expect(throws: BlockDeltaError.self) { _ = try spool.importTar(.file(failedTar)) }
            #expect(failed?.description.contains("failed or was cancelled") == true, "\(String(describing: failed))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state/spool").isEmpty)

            try Data("not a tar at all\n".utf8).write(to: URL(fileURLWithPath: "\(directory)/text.tar"))
            let notTar = #expect(throws: BlockDeltaError.self) { _ = try spool.importTar(.file("\(directory)/text.tar")) }
            #expect(notTar?.description.contains("\(directory)/text.tar") == true, "\(String(describing: notTar))")
            let missing = #expect(throws: BlockDeltaError.self) { _ = try spool.importTar(.file("\(directory)/none.tar")) }
            #expect(missing?.description.contains("\(directory)/none.tar") == true, "\(String(describing: missing))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/spool").isEmpty)
        }
    }
}
