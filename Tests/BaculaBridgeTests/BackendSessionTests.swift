import BackupEngine
import BaculaBridge
import BlockDelta
import CloudEmulator
import Foundation
import Logging
import Testing
import TestSupport

private let seedYAML = """
    projects:
      - name: admin
      - name: tenant
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
          - {name: proxy-root, size: 2}
      - name: app-1
        project: admin
        flavor: m1.small
        volumes:
          - name: app-1-root
            size: 4
            content: [{text: "app root\\n", length: 64K}, {zero: 1M}, {random: 1M, seed: 5}]
    volumes:
      - name: loose
        project: admin
        size: 2
        content: [{random: 256K, seed: 6}]
    """

/// What the plugin side of a session received.
private struct Received {
    /// Files by name: their kind (`full`/`delta`) and data.
    var files: [(name: String, kind: String, data: [UInt8])] = []
    /// Restore objects (`OBJECT:<name>`), with how many files came before each.
    var objects: [(name: String, text: String, filesBefore: Int)] = []
    var checks: [String] = []
    var seen: [String] = []
    var messages: [(BackendPacket.Status, String)] = []
    /// How many messages had come when `END` came.
    var messagesBeforeEnd: Int?
    var abort: String?
    var sawBye = false
}

/// Sends text commands, then an end-of-data packet when `end`.
private func send(_ writer: BackendPacketWriter, _ texts: [String], end: Bool = false) throws {
    try writer.send(texts.map { BackendPacket(.command, text: $0) } + (end ? [BackendPacket(.endOfData)] : []))
}

/// The plugin's opening of a session: handshake, the Job block, the Params block, the filled Plugin
/// Options (a restore's, when given), the start command.
private func openSession(
    _ writer: BackendPacketWriter, _ reader: BackendPacketReader, job: [String], parameters: [String], restoreOptions: String? = nil,
    command: String
) throws {
    try send(writer, ["Hello openstack-fd 1"])
    #expect(try reader.next()?.text == "Hello osbackup 1")
    try send(writer, ["Job"] + job, end: true)
    try send(writer, ["Params"] + parameters, end: true)
    if let restoreOptions {
        try writer.send([BackendPacket(.command, text: "RestoreOptions"), BackendPacket(.data, Array(restoreOptions.utf8)), BackendPacket(.endOfData)])
    }
    try send(writer, [command])
}

/// The plugin's side of one session, run on a thread of its own (its reads block): handshake, Job,
/// Params, the start command, then the backup's files, answering `CHECK:` with `catalogHas` and `END`
/// with `JobEnd:<jobEnd>`.
private func drivePlugin(
    toBackend: Int32, fromBackend: Int32, level: String, accurate: Bool, parameters: [String], catalogHas: Bool, jobEnd: String,
    workingDirectory: String
) async -> Received {
    await withCheckedContinuation { continuation in
        let thread = Thread {
            let writer = BackendPacketWriter(descriptor: toBackend)
            let reader = BackendPacketReader(descriptor: fromBackend)
            var received = Received()
            func send(_ texts: [String]) throws { try BaculaBridgeTests.send(writer, texts) }
            do {
                try openSession(
                    writer, reader,
                    job: [
                        "JobId=7", "JobName=openstack-test.2026-11-30_01.05.00_07", "Level=\(level)", "Since=0", "Accurate=\(accurate ? 1 : 0)",
                        "Where=", "RegexWhere=", "Replace=a", "WorkingDir=\(workingDirectory)",
                    ], parameters: parameters, command: "BackupStart")
                while let packet = try reader.next() {
                    let text = packet.text
                    switch packet.status {
                    case .abort:
                        received.abort = text
                    case .info, .warning, .error:
                        received.messages.append((packet.status, text))
                    case .keepAlive, .data, .endOfData:
                        break
                    case .command where text.hasPrefix("FNAME:"):
                        let stat = try #require(try reader.next()).text
                        #expect(try reader.next()?.status == .endOfData)
                        let fields = stat.dropFirst("STAT:".count).split(separator: " ")
                        var data: [UInt8] = []
                        while let part = try reader.next(), part.status == .data { data += part.payload }
                        #expect(UInt64(fields[0]) == UInt64(data.count), "the size stated is the size sent")
                        received.files.append((String(text.dropFirst("FNAME:".count)), String(fields[2]), data))
                    case .command where text.hasPrefix("OBJECT:"):
                        var data: [UInt8] = []
                        while let part = try reader.next(), part.status == .data { data += part.payload }
                        received.objects.append((String(text.dropFirst("OBJECT:".count)), String(decoding: data, as: UTF8.self), received.files.count))
                    case .command where text.hasPrefix("CHECK:"):
                        received.checks.append(String(text.dropFirst("CHECK:".count)))
                        try send([catalogHas ? "CHECK:found 0" : "CHECK:none"])
                    case .command where text.hasPrefix("SEEN:"):
                        received.seen.append(String(text.dropFirst("SEEN:".count)))
                    case .command where text == "END":
                        received.messagesBeforeEnd = received.messages.count
                        try send(["JobEnd:\(jobEnd)"])
                    case .command where text == "BYE":
                        received.sawBye = true
                    case .command:
                        #expect(text == "OK", "unexpected command \(text)")
                    }
                }
            } catch {
                Issue.record("the plugin side failed: \(error)")
            }
            close(toBackend)
            continuation.resume(returning: received)
        }
        thread.start()
    }
}

/// What the backend answered to a restore.
private struct RestoreOutcome {
    var skipped: [String] = []
    var refused: [String] = []
    var messages: [String] = []
    var finalReply: String?
    var abort: String?
}

/// The plugin's side of a restore: the opening, then each file (`FNAME`, `STAT:<size> <delta_seq>`, data)
/// as Bacula sends a chain, oldest part first, then `END`.
private func drivePluginRestore(
    toBackend: Int32, fromBackend: Int32, where target: String, parameters: [String], restoreOptions: String?,
    files: [(name: String, sequence: Int, data: [UInt8])], workingDirectory: String
) async -> RestoreOutcome {
    await withCheckedContinuation { continuation in
        let thread = Thread {
            let writer = BackendPacketWriter(descriptor: toBackend)
            let reader = BackendPacketReader(descriptor: fromBackend)
            var outcome = RestoreOutcome()
            func send(_ texts: [String], end: Bool = false) throws { try BaculaBridgeTests.send(writer, texts, end: end) }
            /// The next command, passing job messages by.
            func reply() throws -> BackendPacket? {
                while let packet = try reader.next() {
                    switch packet.status {
                    case .info, .warning, .keepAlive: outcome.messages.append(packet.text)
                    default: return packet
                    }
                }
                return nil
            }
            do {
                try openSession(
                    writer, reader,
                    job: [
                        "JobId=9", "JobName=restore", "Level=F", "Since=0", "Accurate=1", "Where=\(target)", "RegexWhere=", "Replace=a",
                        "WorkingDir=\(workingDirectory)",
                    ], parameters: parameters, restoreOptions: restoreOptions, command: "RestoreStart")
                guard let started = try reply(), started.status == .command, started.text == "OK" else {
                    outcome.abort = "no OK to RestoreStart"
                    throw BackendProtocolError("refused", offset: 0)
                }
                for file in files {
                    try send(["FNAME:\(file.name)", "STAT:\(file.data.count) \(file.sequence)"], end: true)
                    let answer = try #require(try reply())
                    if answer.text == "SKIP" {
                        outcome.skipped.append(file.name)
                        continue
                    }
                    #expect(answer.text == "OK")
                    var offset = 0
                    while offset < file.data.count {
                        let end = min(offset + 65_536, file.data.count)
                        try writer.send(BackendPacket(.data, Array(file.data[offset..<end])))
                        offset = end
                    }
                    try writer.send(BackendPacket(.endOfData))
                    let stored = try #require(try reply())
                    if stored.status == .error { outcome.refused.append(file.name) } else { #expect(stored.text == "OK") }
                }
                try send(["END"])
                if let last = try reply() {
                    if last.status == .abort { outcome.abort = last.text } else { outcome.finalReply = last.text }
                }
            } catch {
                if outcome.abort == nil { Issue.record("the plugin side failed: \(error)") }
            }
            close(toBackend)
            continuation.resume(returning: outcome)
        }
        thread.start()
    }
}

/// The emulator's credentials as OS_* variables.
private func cloudEnvironment(_ running: RunningEmulator, home: String) -> [String: String] {
    [
        "OS_AUTH_URL": running.authURL, "OS_USERNAME": "admin", "OS_PASSWORD": "admin-secret", "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": running.region, "HOME": home,
    ]
}

/// Runs one restore session; returns what the backend answered and its status.
private func restoreSession(
    _ running: RunningEmulator, directory: String, where target: String, files: [(name: String, sequence: Int, data: [UInt8])],
    extra: [String] = [], restoreOptions: String? = nil
) async throws -> (RestoreOutcome, Int32) {
    let parameters = ["proxy_server=\(EmulatorSeed.serverID("backup-proxy"))", "device_directory=\(running.deviceDirectory)"] + extra
    return await withBackend(running, directory: directory) { writeEnd, readEnd in
        await drivePluginRestore(
            toBackend: writeEnd, fromBackend: readEnd, where: target, parameters: parameters, restoreOptions: restoreOptions, files: files,
            workingDirectory: directory)
    }
}

/// Runs a backend on pipes against the emulator while `drive` plays the plugin on the other ends
/// (its input's write end, its output's read end); returns what `drive` saw and the backend's status.
private func withBackend<Outcome: Sendable>(
    _ running: RunningEmulator, directory: String, drive: @escaping @Sendable (Int32, Int32) async -> Outcome
) async -> (Outcome, Int32) {
    var toBackend: [Int32] = [0, 0]
    var fromBackend: [Int32] = [0, 0]
    #expect(pipe(&toBackend) == 0 && pipe(&fromBackend) == 0)
    var quiet = Logger(label: "osbackup.bacula.test")
    quiet.logLevel = .warning
    let backend = BaculaBackend(
        input: toBackend[0], output: fromBackend[1], environment: cloudEnvironment(running, home: directory), logger: quiet)
    let (readEnd, writeEnd) = (fromBackend[0], toBackend[1])
    async let status = backend.run()
    let driver = Task { await drive(writeEnd, readEnd) }
    let exit = await status
    close(fromBackend[1])
    let outcome = await driver.value
    close(toBackend[0])
    close(fromBackend[0])
    return (outcome, exit)
}

/// The files Bacula sends to restore the chain Full → Incremental: every volume part in order with its delta
/// sequence, and the newest version of every other file (sequence 0).
private func restoreStream(full: Received, incremental: Received) -> [(name: String, sequence: Int, data: [UInt8])] {
    let isPart = { (name: String) in [".bmp", ".bmpsha", ".bvmdk"].contains { name.hasSuffix($0) } }
    return full.files.filter { isPart($0.name) }.map { ($0.name, 0, $0.data) }
        + incremental.files.filter { isPart($0.name) }.map { ($0.name, $0.kind == "delta" ? 1 : 0, $0.data) }
        + incremental.files.filter { !isPart($0.name) }.map { ($0.name, 0, $0.data) }
}

/// Runs one backend session against the emulator; returns what the plugin received and the backend's status.
private func session(
    _ running: RunningEmulator, directory: String, level: String, accurate: Bool = true, catalogHas: Bool = true, jobEnd: String = "OK",
    extra: [String] = []
) async throws -> (Received, Int32) {
    let parameters = [
        "proxy_server=\(EmulatorSeed.serverID("backup-proxy"))", "device_directory=\(running.deviceDirectory)", "unattached_volumes=yes",
    ] + extra
    return await withBackend(running, directory: directory) { writeEnd, readEnd in
        await drivePlugin(
            toBackend: writeEnd, fromBackend: readEnd, level: level, accurate: accurate, parameters: parameters, catalogHas: catalogHas,
            jobEnd: jobEnd, workingDirectory: directory)
    }
}

/// Stores what the plugin received as a job of `repository` (as Bacula would restore it) and returns it.
private func store(_ received: Received, in repository: BackupRepository) throws -> BackupJobManifest {
    let provisional = BackupID.generate()
    let pending = try repository.beginJob(provisional)
    for file in received.files {
        let path = try pending.prepare(String(file.name.dropFirst()))
        #expect(FileManager.default.createFile(atPath: path, contents: Data(file.data)))
    }
    let manifest = try JobManifestReconstruction.manifest(ofFolder: pending.folder, jobID: provisional)
    try repository.commitJob(manifest, pending: pending)
    return manifest
}

@Suite("The Bacula backend against the emulator (the plugin's side played by the test)")
struct BackendSessionTests {
    private func withCloud(faults: FaultPlan = FaultPlan(), _ body: (RunningEmulator, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            var quiet = Logger(label: "osbackup.emulator.test")
            quiet.logLevel = .warning
            let configuration = EmulatorConfiguration(
                stateDirectory: "\(directory)/cloud", transitionDelay: 0.02, sizeUnit: .mebibyte, faults: faults)
            try await withRunningEmulator(configuration: configuration, seed: try EmulatorSeed.parse(yaml: seedYAML), logger: quiet) { running in
                try await body(running, directory)
            }
        }
    }

    @Test("Full then Incremental through the protocol: the namespace with leading '/', delta parts marked, the chain restores byte-exact")
    func fullThenIncremental() async throws {
        try await withCloud { running, directory in
            let (full, fullStatus) = try await session(running, directory: directory, level: "F")
            #expect(fullStatus == 0, "\(full.abort ?? "")")
            #expect(full.sawBye)
            #expect(full.checks.isEmpty, "a Full asks the catalog nothing")
            #expect(full.objects.map(\.name) == ["RestoreOptions"] && full.objects.first?.filesBefore == 0, "the Plugin Options form comes first")
            #expect(full.objects.first?.text == RestoreOptionsForm.formText)
            let names = full.files.map(\.name)
            let app = EmulatorSeed.serverID("app-1")
            let root = EmulatorSeed.volumeID("app-1-root")
            #expect(names.contains("/@openstack/nova/server/\(app)_app-1.name"))
            #expect(names.contains("/@openstack/nova/server/\(app)/\(app).conf"))
            let rootFiles = names.filter { $0.contains(root) }
            #expect(rootFiles == [
                "/@openstack/nova/server/\(app)/\(root).bmp", "/@openstack/nova/server/\(app)/\(root).bmpsha",
                "/@openstack/nova/server/\(app)/app-1-root_\(root).bvmdk",
            ], "each volume's three files in order")
            #expect(full.files.allSatisfy { $0.kind == "full" })
            let maps = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/osbackup/maps/openstack-test")
            #expect(maps.contains("\(root).map"), "the maps of the Job's chain, under the Job's name without the run's suffix: \(maps)")
            #expect(full.messages.contains { $0.0 == .info && $0.1.contains("volumes saved") })

            let handle = try #require(FileHandle(forWritingAtPath: running.volumeFile(volumeID: root)))
            try handle.seek(toOffset: 1 << 20)
            try handle.write(contentsOf: Data("changed between the jobs".utf8))
            try handle.close()

            let (incremental, status) = try await session(running, directory: directory, level: "I")
            #expect(status == 0, "\(incremental.abort ?? "")")
            #expect(incremental.objects.isEmpty, "the form is stored with the Full only: bconsole offers it once per chain")
            #expect(Set(incremental.checks) == Set(incremental.files.filter { $0.name.hasSuffix(".bvmdk") }.map(\.name)))
            let volumeParts = incremental.files.filter { !$0.name.hasSuffix(".name") && !$0.name.hasSuffix(".conf") && !$0.name.contains("/flavor/") }
            #expect(!volumeParts.isEmpty && volumeParts.allSatisfy { $0.kind == "delta" })
            #expect(incremental.files.filter { $0.name.hasSuffix(".conf") }.allSatisfy { $0.kind == "full" })

            let repository = try BackupRepository(directory: "\(directory)/repo", create: true)
            _ = try store(full, in: repository)
            let last = try store(incremental, in: repository)
            let restored = try RestoreToDirectory.run(
                repository: repository, jobID: last.id, servers: [], volumes: [], target: "\(directory)/out", logger: Logger(label: "t"))
            #expect(restored.count == 2)
            for volume in restored {
                #expect(volume.chainLength == 2)
                let original = try Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: volume.volumeID)))
                #expect(try Data(contentsOf: URL(fileURLWithPath: volume.path)) == original, "\(volume.volumeID)")
            }
            #expect(try running.inventory().snapshots.isEmpty, "no temporary resource left")
        }
    }

    @Test("an Incremental whose files the catalog lacks is sent as a Full; a job Bacula failed installs no map")
    func catalogAndJobEnd() async throws {
        try await withCloud { running, directory in
            let metrics = ["metrics_dir=\(directory)"]
            let (first, _) = try await session(running, directory: directory, level: "F", jobEnd: "FAILED", extra: metrics)
            #expect(first.sawBye == false, "the backend reports the failed job instead of BYE")
            #expect(first.abort?.contains("Bacula reports the job as failed") == true, "\(first.abort ?? "")")
            let prom = "\(directory)/osbackup-openstack-test.prom"
            #expect(try String(contentsOfFile: prom, encoding: .utf8).contains("osbackup_job_success{job=\"openstack-test\"} 0\n"))
            let (second, status) = try await session(running, directory: directory, level: "I", extra: metrics)
            #expect(status == 0)
            let text = try String(contentsOfFile: prom, encoding: .utf8)
            #expect(text.contains("osbackup_job_success{job=\"openstack-test\"} 1\n") && text.contains("osbackup_volume_bytes_read{"), "\(text)")
            #expect(second.checks.isEmpty, "no map was installed, so there is nothing to build on")
            #expect(second.files.allSatisfy { $0.kind == "full" })
            let (third, _) = try await session(running, directory: directory, level: "I", catalogHas: false)
            #expect(!third.checks.isEmpty)
            #expect(third.files.allSatisfy { $0.kind == "full" }, "without a catalog version a delta would be dropped at restore")
        }
    }

    @Test("a volume that fails: its files SEEN and a warning (the job stays OK); with abort_on_error=yes an error before END")
    func failedVolumes() async throws {
        // The proxy never sees the attached devices: every volume fails after device_timeout.
        try await withCloud(faults: FaultPlan(deviceDelayMilliseconds: 600_000)) { running, directory in
            let (lenient, lenientStatus) = try await session(running, directory: directory, level: "F", extra: ["device_timeout=1"])
            #expect(lenientStatus == 0 && lenient.sawBye, "\(lenient.abort ?? "")")
            #expect(lenient.seen.contains { $0.hasSuffix(".bvmdk") }, "a failed volume's files are SEEN: \(lenient.seen)")
            #expect(lenient.messages.contains { $0.0 == .warning && $0.1.contains("not saved") })
            #expect(!lenient.messages.contains { $0.0 == .error })

            let (strict, _) = try await session(
                running, directory: directory, level: "F", jobEnd: "FAILED", extra: ["device_timeout=1", "abort_on_error=yes"])
            let errors = strict.messages.prefix(strict.messagesBeforeEnd ?? 0).filter { $0.0 == .error }.map(\.1)
            #expect(!errors.isEmpty && errors.allSatisfy { $0.contains("abort_on_error=yes fails the job") }, "\(errors)")
            #expect(try running.inventory().snapshots.isEmpty, "no temporary resource left")
        }
    }

    @Test("an Incremental without Accurate is refused naming Accurate = yes; unknown keys and bad values are named")
    func refusals() async throws {
        try await withCloud { running, directory in
            let (noAccurate, status) = try await session(running, directory: directory, level: "I", accurate: false)
            #expect(status == 1)
            #expect(noAccurate.abort?.contains("Accurate = yes") == true)
            let (unknown, _) = try await session(running, directory: directory, level: "F", extra: ["colour=blue"])
            #expect(unknown.abort?.contains("unknown key 'colour'") == true)
            let (badBool, _) = try await session(running, directory: directory, level: "F", extra: ["all_projects=maybe"])
            #expect(badBool.abort?.contains("all_projects=maybe is not a boolean") == true)
            #expect(try running.inventory().snapshots.isEmpty)
        }
    }

    @Test("restores as Bacula sends them: where=DIR gives byte-exact raw images and the .conf; where=/ with bconsole's new_server boots the server")
    func restores() async throws {
        try await withCloud { running, directory in
            let (full, _) = try await session(running, directory: directory, level: "F")
            let root = EmulatorSeed.volumeID("app-1-root")
            let handle = try #require(FileHandle(forWritingAtPath: running.volumeFile(volumeID: root)))
            try handle.seek(toOffset: 1 << 20)
            try handle.write(contentsOf: Data("changed between the jobs".utf8))
            try handle.close()
            let (incremental, _) = try await session(running, directory: directory, level: "I")
            let stream = restoreStream(full: full, incremental: incremental)

            let target = "\(directory)/where"
            let (outcome, status) = try await restoreSession(
                running, directory: directory, where: target, files: stream + [("/etc/passwd", 0, Array("x".utf8))])
            #expect(status == 0, "\(outcome.abort ?? "")")
            #expect(outcome.finalReply == "OK")
            #expect(outcome.skipped == ["/etc/passwd"], "outside the namespace: skipped, not written")
            let app = EmulatorSeed.serverID("app-1")
            let image = "\(target)/@openstack/nova/server/\(app)/app-1-root_\(root).raw"
            #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == Data(contentsOf: URL(fileURLWithPath: running.volumeFile(volumeID: root))))
            #expect(FileManager.default.fileExists(atPath: "\(target)/@openstack/nova/server/\(app)/\(app).conf"))
            #expect(!FileManager.default.fileExists(atPath: "\(target)/etc/passwd"))

            // A damaged part is refused when it arrives, and the chain it belongs to cannot be restored.
            var damaged = stream
            let index = try #require(damaged.firstIndex { $0.name.hasSuffix("\(root).bmpsha") && $0.sequence == 1 })
            damaged[index].data[damaged[index].data.count - 3] ^= 0xFF
            let (broken, brokenStatus) = try await restoreSession(running, directory: directory, where: "\(directory)/broken", files: damaged)
            #expect(!broken.refused.isEmpty, "the damaged part is refused")
            #expect(brokenStatus == 1 && broken.abort != nil)
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/broken/@openstack/nova/server/\(app)/app-1-root_\(root).raw"))

            let appStream = stream.filter { $0.name.contains("/server/\(app)") }
            // The Plugin Options as the Director fills them in (ConfigFile::dump_results): they win over the line.
            let filled = """
                # Plugin configuration file
                # Version 1
                # Boot a new server (Where empty or /)
                new_server=yes

                # New server's name
                name="app-1-restored"

                """
            let (cloud, cloudStatus) = try await restoreSession(
                running, directory: directory, where: "/", files: appStream, extra: ["new_server=no", "name=from-the-line"], restoreOptions: filled)
            #expect(cloudStatus == 0, "\(cloud.abort ?? "")")
            #expect(cloud.messages.contains { $0.hasPrefix("new server ") })
            let inventory = try running.inventory()
            let server = try #require(inventory.servers.first { $0.name == "app-1-restored" })
            #expect(server.status == "ACTIVE")
            #expect(server.projectID == EmulatorSeed.projectID("admin"), "by default in the original server's project")
            #expect(inventory.snapshots.isEmpty && inventory.volumes.allSatisfy { $0.metadata["osbackup_job"] == nil })

            // project= (bconsole's Plugin Options): new volumes in another project, by a re-scoped password login.
            let tenant = EmulatorSeed.projectID("tenant")
            let before = Set(inventory.volumes.map(\.id))
            let (elsewhere, elsewhereStatus) = try await restoreSession(
                running, directory: directory, where: "/", files: appStream, restoreOptions: "project=\"\(tenant)\"\n")
            #expect(elsewhereStatus == 0, "\(elsewhere.abort ?? "")")
            let made = try running.inventory().volumes.filter { !before.contains($0.id) }
            #expect(made.count == 1 && made.allSatisfy { $0.projectID == tenant }, "\(made.map { ($0.name ?? "", $0.projectID) })")
        }
    }
}
