import BackupEngine
import BlockDelta
import Foundation
import Logging
import OpenStackClient

/// The restore side of the backend: parts received into a spool, then each chain restored at `END`.
extension BaculaBackend {
    /// Receives the parts Bacula restores into a spool, then, at `END`, restores every volume's chain: to
    /// raw images below `where`, or (where empty or `/`) into the cloud.
    func restore(_ job: BaculaJobInfo, _ parameters: PluginParameters, logger: Logger) async throws {
        let state = parameters.value("state") ?? "\(job.workingDirectory)/osbackup"
        let intoCloud = job.where.isEmpty || job.where == "/"
        let target = try restoreTarget(parameters, intoCloud: intoCloud)
        let spool = try BaculaRestoreSpool(directory: "\(state)/spool")
        defer { spool.remove() }
        try writer.send(BackendPacket(.command, text: "OK"))
        // The parts arrive over a blocking pipe: read them on a thread of their own.
        let backend = self
        let refused = try await BlockingWork.run { Result { try backend.receiveParts(into: spool) } }.get()
        guard refused.isEmpty else {
            // Restoring the older parts alone would give an earlier state under the newest name.
            throw BackupError(
                .integrity, resource: "Bacula restore", "damaged parts arrived, so nothing was restored: \(refused.joined(separator: ", "))",
                hint: "check the Volumes these parts were read from (`bls`, `bscan`), or restore an earlier backup")
        }
        let repository = try spool.repository()
        let plan = try RestorePlan.newestOfEachVolume(repository: repository)
        if !intoCloud {
            let restored = try await withKeepAlive {
                try await blocking { () throws(BlockDeltaError) in
                    try RestoreToDirectory.run(plan: plan, target: job.where, logger: logger)
                }
            }
            for volume in restored {
                try writer.send(BackendPacket(.info, text: "restored volume \(volume.volumeID) (chain of \(volume.chainLength)) to \(volume.path)"))
            }
        } else {
            let project = try RestoreProject.wanted(explicit: parameters.value("project"), plan: plan, option: "project=")
            try await withCloud(parameters, configure: { RestoreProject.scoping($0, to: project) }) { configuration, cloud, transport in
                try RestoreProject.requireScope(cloud, project: project, option: "project=")
                let proxyID = try await proxyServerID(parameters, configuration: configuration, transport: transport)
                let report = try await withKeepAlive {
                    try await CloudRestoreJob.run(
                        CloudRestoreRequest(
                            target: target, namePrefix: parameters.value("name_prefix") ?? "restored-", volumeType: parameters.value("volume_type"),
                            availabilityZone: parameters.value("availability_zone"), stateDirectory: state, proxyServerID: proxyID,
                            devices: try devices(parameters, configuration: configuration), parallel: try parameters.integer("parallel", default: 2)),
                        plan: plan, cloud: cloud, logger: logger)
                }
                for volume in report.volumes {
                    try writer.send(
                        BackendPacket(.info, text: "restored volume \(volume.originalVolumeID) (chain of \(volume.chainLength)) onto volume \(volume.volumeID)"))
                }
                for (original, server) in report.servers.sorted(by: { $0.key < $1.key }) {
                    try writer.send(BackendPacket(.info, text: "new server \(server) from the backup of server \(original)"))
                }
            }
        }
        try writer.send(BackendPacket(.command, text: "OK"))
    }

    /// What a restore into the cloud makes, from the plugin options.
    private func restoreTarget(_ parameters: PluginParameters, intoCloud: Bool) throws -> CloudRestoreRequest.Target {
        if try parameters.flag("in_place") {
            guard try parameters.flag("force") else {
                throw BackupError(
                    .configuration, resource: "restore", "in_place=yes overwrites the original volumes", hint: "add force=yes to confirm")
            }
            return .inPlace
        }
        if try parameters.flag("new_server") {
            return .newServer(
                .init(
                    name: parameters.value("name"), flavor: parameters.value("flavor"), networks: parameters.values("network"),
                    availabilityZone: parameters.value("availability_zone"), keyName: parameters.value("key_name")))
        }
        return .newVolumes
    }

    /// Receives files until `END`: each accepted (`OK`) and stored, or skipped (`SKIP`) when it is outside
    /// the namespace; each volume part is checked when its data file is complete (`E` if it is damaged).
    /// Returns the names of the files refused.
    private func receiveParts(into spool: BaculaRestoreSpool) throws -> [String] {
        var refused: [String] = []
        while true {
            let command = try expectCommand()
            if command == "END" { return refused }
            guard command.hasPrefix("FNAME:") else { throw BackendProtocolError("expected FNAME or END, got '\(command.prefix(80))'", offset: 0) }
            let name = String(command.dropFirst("FNAME:".count))
            let stat = try expectCommand()
            let fields = stat.dropFirst("STAT:".count).split(separator: " ")
            guard stat.hasPrefix("STAT:"), fields.count == 2, let size = UInt64(fields[0]), let sequence = Int(fields[1]) else {
                throw BackendProtocolError("expected STAT:<size> <delta_seq>, got '\(stat.prefix(80))'", offset: 0)
            }
            guard try reader.next()?.status == .endOfData else { throw BackendProtocolError("expected the end of the file header", offset: 0) }
            guard let path = try spool.path(for: name, sequence: sequence) else {
                try writer.send(BackendPacket(.command, text: "SKIP"))
                continue
            }
            try writer.send(BackendPacket(.command, text: "OK"))
            let received = try receiveData(to: path)
            if received != size {
                refused.append(name)
                try writer.send(BackendPacket(.error, text: "\(name): \(received) bytes arrived, the catalog says \(size)"))
            } else if let problem = damage(ofPartEndingWith: path) {
                refused.append(name)
                try writer.send(BackendPacket(.error, text: "\(name): \(problem)"))
            } else {
                try writer.send(BackendPacket(.command, text: "OK"))
            }
        }
    }

    /// Writes data packets up to the end of data into `path`; returns the bytes written.
    private func receiveData(to path: String) throws -> UInt64 {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw BackupError(.failed, resource: path, "cannot create the spool file", hint: "check the state directory's space and rights")
        }
        defer { try? handle.close() }
        var total: UInt64 = 0
        while true {
            guard let packet = try reader.next() else { throw BackendProtocolError("the plugin closed the stream inside a file", offset: 0) }
            switch packet.status {
            case .data:
                try handle.write(contentsOf: packet.payload)
                total += UInt64(packet.payload.count)
            case .endOfData:
                return total
            default:
                throw BackendProtocolError("expected file data, got a \(packet.status) packet", offset: 0)
            }
        }
    }

    /// When `path` is a volume part's data file: why the part's three files do not hold together, if they do not.
    private func damage(ofPartEndingWith path: String) -> String? {
        guard path.hasSuffix(".bvmdk") else { return nil }
        let folder = (path as NSString).deletingLastPathComponent
        let base = String((path as NSString).lastPathComponent.dropLast(".bvmdk".count))
        let volumeID = base.split(separator: "_").last.map(String.init) ?? base
        let files = VolumeBackupFiles(regions: "\(folder)/\(volumeID).bmp", digests: "\(folder)/\(volumeID).bmpsha", data: path)
        do {
            _ = try VolumeBackupReader(files: files)
            return nil
        } catch {
            for file in files.all { unlink(file) }
            return "the part is damaged and was not kept: \(error)"
        }
    }

    /// Runs blocking work off the cooperative pool.
    private func blocking<Value: Sendable>(_ body: @escaping @Sendable () throws(BlockDeltaError) -> Value) async throws -> Value {
        try await BlockingWork.run { Result { () throws(BlockDeltaError) -> Value in try body() } }.get()
    }
}
