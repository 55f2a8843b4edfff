import BackupEngine
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import OpenStackClient
import Testing
import TestSupport

@Suite("Cloud backups on the emulator")
struct CloudBackupTests {
    @Test("Full then Incremental of every server and the loose volume restore byte-exact, and nothing is left behind")
    func fullIncrementalRestore() async throws {
        try await withCloudJob { running, cloud, directory in
            let repo = "\(directory)/repo"
            // max_disk_devices 2 on the proxy (its root uses one): parallel 4 must narrow to 1 and still save all.
            let full = try await runJob(request(directory, running, level: .full), cloud, repository: repo)
            #expect(full.allSaved, "\(full.volumes)")
            #expect(full.volumes.count == 4)
            #expect(full.skipped.contains { $0.reason.contains("the proxy server itself") })
            try expectNoDebris(running)

            let webRoot = EmulatorSeed.volumeID("root/../x")
            try change(running, volumeID: webRoot, at: 3 << 20, Data("changed after the Full".utf8))

            let incremental = try await runJob(request(directory, running, level: .incremental), cloud, repository: repo)
            #expect(incremental.allSaved)
            #expect(incremental.volumes.allSatisfy { $0.level == "incremental" })
            let changed = try #require(incremental.volumes.first { $0.volumeID == webRoot })
            #expect(changed.dataBytes == 65536)
            #expect(changed.bytesStored > 0 && changed.bytesStored <= 65536 + UInt64(BlockFrameWord.size))
            #expect(incremental.volumes.filter { $0.volumeID != webRoot }.allSatisfy { $0.dataBytes == 0 && $0.bytesStored == 0 })
            try expectNoDebris(running)

            let restored = try RestoreToDirectory.run(
                repository: BackupRepository(directory: repo, create: false), jobID: nil, servers: [], volumes: [],
                target: "\(directory)/out", logger: testLogger)
            #expect(restored.count == 4)
            let dbID = EmulatorSeed.serverID("db-1")
            let servers = "\(directory)/out/@openstack/nova/server"
            #expect(FileManager.default.fileExists(atPath: "\(servers)/\(dbID)/\(dbID).conf"))
            #expect(FileManager.default.fileExists(atPath: "\(servers)/\(dbID)_db-1.name"))
            for volume in restored {
                #expect(volume.path.hasSuffix("\(volume.volumeID).raw"))
                #expect(volume.path.hasPrefix("\(directory)/out/@openstack/"))
                #expect(!volume.path.dropFirst(directory.count).contains(".."))
                let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == original, "\(volume.path)")
            }
        }
    }

    @Test("the report says where each volume's time went (OpenStack steps, attach slot, scan) and the job's totals add them up")
    func timings() async throws {
        let delay = 0.1
        try await withCloudJob(transitionDelay: delay) { running, cloud, directory in
            let report = try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo")
            #expect(report.allSaved && report.volumes.count == 4)
            for volume in report.volumes {
                let timings = volume.timings
                // Each OpenStack step waits for at least one of the emulator's transitions (creating -> available,
                // attaching -> in-use, detaching -> available).
                for (step, seconds) in [
                    ("snapshot", timings.snapshotSeconds), ("temporary volume", timings.temporaryVolumeSeconds),
                    ("attach", timings.attachSeconds), ("cleanup", timings.cleanupSeconds),
                ] {
                    #expect(seconds >= delay, "\(step) of \(volume.volumeID): \(seconds) s")
                }
                #expect(timings.scanSeconds > 0)
                let openStack = timings.snapshotSeconds + timings.temporaryVolumeSeconds + timings.attachSeconds + timings.cleanupSeconds
                #expect(abs(timings.openStackWaitSeconds - openStack) < 1e-9)
                // The cleanup overlaps the end of the scan (the files' hand-over to the sink); the other steps follow each other.
                let beforeCleanup = timings.openStackWaitSeconds - timings.cleanupSeconds + timings.attachSlotWaitSeconds + timings.scanSeconds
                #expect(beforeCleanup <= volume.seconds + 1e-6, "\(timings), \(volume.seconds) s")
                #expect(beforeCleanup - timings.scanSeconds + timings.cleanupSeconds <= volume.seconds + 1e-6, "\(timings), \(volume.seconds) s")
            }
            let totals = report.totals
            #expect(totals.bytesRead == report.volumes.reduce(0) { $0 + $1.bytesRead } && totals.bytesRead > 0)
            #expect(totals.bytesStored == report.volumes.reduce(0) { $0 + $1.bytesStored })
            #expect(abs(totals.openStackWaitSeconds - report.volumes.reduce(0) { $0 + $1.timings.openStackWaitSeconds }) < 1e-9)
            #expect(abs(totals.scanSeconds - report.volumes.reduce(0) { $0 + $1.timings.scanSeconds }) < 1e-9)
            #expect(totals.volumesSeconds >= report.volumes.map(\.seconds).max()! - 1e-6)
            #expect(abs(totals.preparationSeconds + totals.volumesSeconds + totals.finishSeconds - totals.seconds) < 1e-6)
            #expect(totals.preparationSeconds > 0 && totals.finishSeconds > 0)

            let table = report.summaryTable()
            #expect(table.contains("openstack") && table.contains("scan"), "\(table)")
            #expect(table.contains("s waiting on OpenStack") && table.contains("MB/s read"), "\(table)")
            // The JSON report (`backup --json`, the metrics) carries the same fields.
            let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            for key in ["\"timings\"", "\"openStackWaitSeconds\"", "\"attachSlotWaitSeconds\"", "\"scanSeconds\"", "\"totals\"", "\"volumesSeconds\""] {
                #expect(json.contains(key), "\(key) missing")
            }
        }
    }

    @Test("a volume's temporary resources are detached and deleted while the sink takes its files, not after")
    func cleanupOverlapsHandOver() async throws {
        try await withCloudJob(transitionDelay: 0.05) { running, cloud, directory in
            let jobID = BackupID.generate()
            let repository = try DirectorySink(repository: BackupRepository(directory: "\(directory)/repo", create: true), jobID: jobID)
            // One volume at a time: when a volume's files are handed over, its resources are the only temporary ones.
            let probe = HandOverProbe(repository) {
                guard let inventory = try? running.inventory() else { return false }
                let proxyID = EmulatorSeed.serverID("backup-proxy")
                return inventory.snapshots.isEmpty && !inventory.volumes.contains { $0.metadata[CloudTags.job] != nil }
                    && !inventory.attachments.contains { $0.serverID == proxyID && $0.volumeID != EmulatorSeed.volumeID("proxy-root") }
            }
            let report = try await CloudBackupJob.run(
                request(directory, running, level: .full, parallel: 1), cloud: cloud, sink: probe, jobID: jobID, logger: testLogger)
            #expect(report.allSaved && report.volumes.count == 4, "\(report.volumes)")
            #expect(probe.handOvers.withLock { $0 } == [true, true, true, true], "the cloud was clean during each volume's hand-over")
            try expectNoDebris(running)
        }
    }

    @Test("readingEnded comes once the whole source has been read, before the sink takes the volume's files")
    func readingEndedAfterTheRead() async throws {
        try await withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 11)
            let image = DiskImage.content(size: 3_000_000, using: &generator)
            try DiskImage.write(image, to: "\(directory)/disk.img")
            let volumeID = try VolumeID.validated(UUID().uuidString.lowercased())
            let backupID = BackupID.generate()
            let repository = try DirectorySink(repository: BackupRepository(directory: "\(directory)/repo", create: true), jobID: backupID)
            let probe = HandOverProbe(repository) { true }
            let done = LockedValue<UInt64>(0)
            let atSignal = LockedValue<[(done: UInt64, handOvers: Int)]>([])
            let state = try VolumeStateStore(directory: "\(directory)/state")
            let scanned = try await VolumeScan.run(
                VolumeScanRequest(
                    sourcePath: "\(directory)/disk.img", sourceDescription: "disk.img", volumeID: volumeID,
                    paths: BackupNamespace.volumeFiles(folder: BackupNamespace.images, volumeID: volumeID.rawValue, volumeName: "disk.img"),
                    level: .full, blockSize: 4096, parallelism: ParallelIOConfiguration(chunkSize: 64 << 10, workerCount: 2)),
                backupID: backupID, state: state, sink: probe,
                progress: { bytes in done.withLock { $0 = max($0, bytes) } },
                readingEnded: {
                    let read = done.withLock { $0 }
                    let handOvers = probe.handOvers.withLock { $0.count }
                    atSignal.withLock { $0.append((read, handOvers)) }
                },
                logger: testLogger)
            scanned.discardMap(state: state)
            let signals = atSignal.withLock { $0 }
            try #require(signals.count == 1, "readingEnded called \(signals.count) times")
            #expect(signals[0].done == UInt64(image.count), "signalled after \(signals[0].done) of \(image.count) bytes")
            #expect(signals[0].handOvers == 0, "signalled after the sink took the files")
            #expect(probe.handOvers.withLock { $0.count } == 1)
        }
    }

    @Test("awkward names are path-safe, the .name keeps the original, the .conf holds no secret")
    func namespace() async throws {
        try await withCloudJob { running, cloud, directory in
            let report = try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo")
            let job = try BackupRepository(directory: "\(directory)/repo", create: false).latestJob()
            #expect(job.jobID == report.jobID)
            let webID = EmulatorSeed.serverID("web/1 ..\u{202E}\nevil")
            let nameFile = try #require(job.files.first { $0.hasPrefix("@openstack/nova/server/\(webID)_") })
            #expect(!nameFile.contains("\u{202E}") && !nameFile.contains("\n") && !nameFile.contains(".."))
            #expect(nameFile.split(separator: "/").count == 4)
            let folder = "\(directory)/repo/\(job.jobID)"
            #expect(try String(contentsOfFile: "\(folder)/\(nameFile)", encoding: .utf8) == "web/1 ..\u{202E}\nevil")
            let conf = try String(contentsOfFile: "\(folder)/@openstack/nova/server/\(webID)/\(webID).conf", encoding: .utf8)
            #expect(!conf.contains("admin-secret") && !conf.lowercased().contains("token") && !conf.contains("adminPass"))
            let parsed = try ServerConfiguration.decode(Array(conf.utf8))
            #expect(parsed.volumes.count == 2)
            #expect(parsed.server?.name == "web/1 ..\u{202E}\nevil")
            let root = try #require(job.volumes.first { $0.volumeID == EmulatorSeed.volumeID("root/../x") })
            #expect(root.dataFile.hasSuffix("/root_.__x_\(root.volumeID).bvmdk"))
            #expect(job.files.contains("@openstack/nova/flavor/m1.small"))
            #expect(job.volumes.contains { $0.dataFile.hasPrefix("@openstack/cinder/volume/") })
        }
    }

    @Test("selection: by name, by regex, exclusion, one volume; an unknown server is a not-found error")
    func selection() async throws {
        try await withCloudJob { running, cloud, directory in
            let byName = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(servers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(byName.volumes.map(\.volumeID) == [EmulatorSeed.volumeID("db-1-root")])
            let excluded = try await runJob(
                request(
                    directory, running, level: .full,
                    selection: TargetSelection(servers: [try ServerSelector.parse("re:.*")], excludedServers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(!excluded.volumes.contains { $0.serverName == "db-1" })
            #expect(excluded.volumes.contains { $0.serverName == "backup-proxy" }, "a regex names the proxy too")
            let oneVolume = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(volumes: [EmulatorSeed.volumeID("loose")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(oneVolume.volumes.map(\.volumeID) == [EmulatorSeed.volumeID("loose")])
            let error = await #expect(throws: BackupError.self) {
                _ = try await runJob(
                    request(directory, running, level: .full, selection: TargetSelection(servers: [.name("nope")], allProjects: true)),
                    cloud, repository: "\(directory)/repo")
            }
            #expect(error?.kind == .notFound)
            #expect(error?.description.contains("nope") == true)
            try expectNoDebris(running)
        }
    }

    @Test("a job cancelled mid-scan removes its temporary resources and installs no map")
    func cancellation() async throws {
        try await withCloudJob { running, cloud, directory in
            let task = Task { try await runJob(request(directory, running, level: .full), cloud, repository: "\(directory)/repo") }
            // Cancel once a temporary volume is attached to the proxy.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if try running.inventory().volumes.contains(where: { $0.metadata[CloudTags.job] != nil && $0.status == "in-use" }) { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            task.cancel()
            let error = await #expect(throws: BackupError.self) { _ = try await task.value }
            #expect(error?.kind == .cancelled)
            try expectNoDebris(running)
            let maps = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/state").filter { $0.hasSuffix(".map") }
            #expect(maps.isEmpty)
            #expect(try BackupRepository(directory: "\(directory)/repo", create: false).jobs().isEmpty)
        }
    }

    @Test("a dead job's journal is replayed by the next job, and tagged leftovers no journal knows are found")
    func sweep() async throws {
        try await withCloudJob { running, cloud, directory in
            let state = "\(directory)/state"
            let proxyID = EmulatorSeed.serverID("backup-proxy")
            let source = EmulatorSeed.volumeID("db-1-root")
            // A job that "died" after creating a snapshot whose answer it never saw (no id in the journal).
            let deadJob = "\(BackupID.generate())"
            let journal = try ResourceJournal.create(stateDirectory: state, jobID: deadJob, proxyServerID: proxyID)
            let tag = UUID().uuidString.lowercased()
            _ = try journal.record(JournalEntry(kind: .snapshot, id: nil, requestTag: tag, name: "osbackup-dead", sourceVolumeID: source))
            _ = try await cloud.blockStorage.createSnapshot(
                volumeID: source, name: "osbackup-dead",
                metadata: [CloudTags.job: deadJob, CloudTags.proxy: proxyID, CloudTags.sourceVolume: source, CloudTags.request: tag])
            journal.close()  // the lock goes, the journal stays: as after a SIGKILL
            // And a leftover of a lost working dir: tagged, no journal.
            let lostJob = "\(BackupID.generate())"
            let lost = try await cloud.blockStorage.createVolume(
                VolumeCreateRequest(size: 1, name: "osbackup-lost", metadata: [CloudTags.job: lostJob, CloudTags.proxy: proxyID]))
            // An operator's volume with a similar name but no tags is never touched.
            let operators = try await cloud.blockStorage.createVolume(VolumeCreateRequest(size: 1, name: "osbackup-mine"))
            _ = try await cloud.blockStorage.waitForVolume(id: lost.id, statuses: ["available"])
            _ = try await cloud.blockStorage.waitForVolume(id: operators.id, statuses: ["available"])

            let report = try await runJob(
                request(directory, running, level: .full, selection: TargetSelection(servers: [.name("db-1")], allProjects: true)),
                cloud, repository: "\(directory)/repo")
            #expect(report.sweptResources == 1)
            #expect(try running.inventory().snapshots.isEmpty)

            let sweeper = ResourceSweeper(cloud: cloud, logger: testLogger)
            let leftovers = try await sweeper.taggedLeftovers(proxyServerID: proxyID) { ResourceJournal.isLive(stateDirectory: state, jobID: $0) }
            #expect(leftovers.keys.sorted() == [lostJob])
            for entry in leftovers[lostJob] ?? [] { try await sweeper.undo(entry, jobID: lostJob) }
            let volumes = try running.inventory().volumes.map(\.id)
            #expect(!volumes.contains(lost.id))
            #expect(volumes.contains(operators.id))
        }
    }
}

/// A directory repository's sink that, as each volume's files are handed over, waits (up to 20 s) for
/// `cloudIsClean` and records whether it came true.
final class HandOverProbe: BackupSink {
    let repository: DirectorySink
    let cloudIsClean: @Sendable () -> Bool
    let handOvers = LockedValue<[Bool]>([])

    init(_ repository: DirectorySink, cloudIsClean: @escaping @Sendable () -> Bool) {
        self.repository = repository
        self.cloudIsClean = cloudIsClean
    }

    func isStored(_ id: BackupID, paths: VolumeNamespacePaths) -> Bool { repository.isStored(id, paths: paths) }
    func writeFile(_ path: String, contents: [UInt8]) throws(BlockDeltaError) { try repository.writeFile(path, contents: contents) }
    func beginVolume(_ paths: VolumeNamespacePaths) throws(BlockDeltaError) -> VolumeBackupFiles { try repository.beginVolume(paths) }
    func abandonVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) { repository.abandonVolume(paths, files: files) }
    func finish(_ manifest: BackupJobManifest) throws(BlockDeltaError) { try repository.finish(manifest) }
    func abandon() { repository.abandon() }
    var dataEncoding: DataEncoding { repository.dataEncoding }

    func commitVolume(_ paths: VolumeNamespacePaths, files: VolumeBackupFiles) throws(BlockDeltaError) {
        let deadline = Date().addingTimeInterval(20)
        var clean = cloudIsClean()
        while !clean && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            clean = cloudIsClean()
        }
        handOvers.withLock { $0.append(clean) }
        try repository.commitVolume(paths, files: files)
    }
}
