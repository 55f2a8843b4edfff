import Foundation

extension EmulatorSeed {
    private func invalid(_ reason: String) -> EmulatorError {
        EmulatorError.invalidFile(path: "<seed>", what: "seed", reason: reason)
    }

    /// Builds the records and the volume files of this seed.
    func apply(to records: inout CloudRecords, storage: VolumeStorage) throws {
        let now = Date()
        func projectID(_ name: String) throws -> String {
            guard projects.contains(where: { $0.name == name }) else { throw invalid("unknown project '\(name)'") }
            return Self.projectID(name)
        }
        for project in projects {
            var quota = QuotaRecord()
            if let volumes = project.quota?.volumes { quota.volumes = volumes }
            if let snapshots = project.quota?.snapshots { quota.snapshots = snapshots }
            if let gigabytes = project.quota?.gigabytes { quota.gigabytes = gigabytes }
            records.projects.append(ProjectRecord(id: Self.projectID(project.name), name: project.name, quota: quota))
        }
        for user in users {
            var roles: [String: [String]] = [:]
            for (project, names) in user.roles { roles[try projectID(project)] = names }
            records.users.append(
                UserRecord(
                    id: Self.userID(user.name), name: user.name, password: user.password,
                    defaultProjectID: try user.defaultProject.map(projectID), roles: roles))
        }
        let admin = users.first { $0.cloudsYAML == true } ?? users.first { $0.roles.values.contains { $0.contains("admin") } }
        records.adminUser = admin?.name
        records.region = region
        records.adminProject = admin.flatMap { user in
            user.defaultProject ?? user.roles.first { $0.value.contains("admin") }?.key ?? user.roles.keys.sorted().first
        }
        for credential in applicationCredentials ?? [] {
            guard let user = users.first(where: { $0.name == credential.user }) else {
                throw invalid("application credential '\(credential.name)': unknown user '\(credential.user)'")
            }
            records.applicationCredentials.append(
                ApplicationCredentialRecord(
                    id: credential.id ?? Identifiers.stable("application-credential", credential.name),
                    name: credential.name, userID: Self.userID(user.name), projectID: try projectID(credential.project),
                    secret: credential.secret, roles: credential.roles ?? user.roles[credential.project] ?? []))
        }
        for flavor in flavors ?? [] {
            records.flavors.append(
                FlavorRecord(
                    id: flavor.id ?? Identifiers.stableUUID("flavor", flavor.name), name: flavor.name, vcpus: flavor.vcpus,
                    ram: flavor.ram, disk: flavor.disk, extraSpecs: flavor.extraSpecs ?? [:]))
        }
        for network in networks ?? [] {
            records.networks.append(NetworkRecord(id: Identifiers.stableUUID("network", network.name), name: network.name))
        }
        records.keypairs = keypairs ?? []
        var created = now.addingTimeInterval(-3600)
        for server in servers ?? [] {
            let project = try projectID(server.project)
            let userName = server.user ?? users.first { $0.roles[server.project] != nil }?.name
            guard let userName, users.contains(where: { $0.name == userName }) else {
                throw invalid("server '\(server.name)': no user for project '\(server.project)'")
            }
            guard let flavor = records.flavors.first(where: { $0.name == server.flavor }) else {
                throw invalid("server '\(server.name)': unknown flavor '\(server.flavor)'")
            }
            var record = ServerRecord(
                id: Self.serverID(server.name), name: server.name, projectID: project, userID: Self.userID(userName),
                flavorID: flavor.id, status: "ACTIVE", vmState: "active", taskState: server.taskState,
                availabilityZone: server.availabilityZone ?? "nova", keyName: server.keyName, metadata: server.metadata ?? [:],
                securityGroups: server.securityGroups ?? ["default"], ports: [], createdAt: created, updatedAt: created,
                locked: server.locked ?? false, rootVolumeID: nil, maxDiskDevices: server.maxDiskDevices,
                isProxy: server.proxy ?? false)
            for name in server.networks ?? [] {
                guard let network = records.networks.first(where: { $0.name == name }) else {
                    throw invalid("server '\(server.name)': unknown network '\(name)'")
                }
                record.ports.append(makePort(network, records: records, extra: record.ports.count))
            }
            created = created.addingTimeInterval(1)
            for (offset, volume) in (server.volumes ?? []).enumerated() {
                var volumeRecord = try makeVolume(volume, projectID: project, userID: record.userID, created: created, storage: storage)
                if offset == 0 {
                    record.rootVolumeID = volumeRecord.id
                    volumeRecord.bootable = true
                }
                volumeRecord.status = "in-use"
                volumeRecord.attachment = AttachmentRecord(
                    id: Identifiers.stableUUID("attachment", volume.name), serverID: record.id,
                    device: "/dev/vd" + String("abcdefghijklmnopqrstuvwxyz".dropFirst(offset).first ?? "z"), attachedAt: created,
                    deleteOnTermination: false, tag: nil, bdmID: Identifiers.stableUUID("bdm", volume.name))
                records.volumes.append(volumeRecord)
            }
            records.servers.append(record)
        }
        for volume in volumes ?? [] {
            guard let project = volume.project else { throw invalid("volume '\(volume.name)' needs a project") }
            let userName = users.first { $0.roles[project] != nil }?.name ?? users[0].name
            records.volumes.append(
                try makeVolume(volume, projectID: try projectID(project), userID: Self.userID(userName), created: created, storage: storage))
        }
        try assignProxyDeviceDirectories(&records.servers)
    }

    /// Gives each proxy after the first its own device folder, `<device directory>/<its name>`, so a volume
    /// attached to one proxy never appears to another. Such a name must be one plain path component (not
    /// `disk`, which holds the first proxy's devices) and proxies' names must differ.
    private func assignProxyDeviceDirectories(_ servers: inout [ServerRecord]) throws {
        let proxies = servers.indices.filter { servers[$0].isProxy }
        var names: Set<String> = []
        for index in proxies {
            let name = servers[index].name
            guard names.insert(name).inserted else { throw invalid("two servers with proxy: true are both named '\(name)'; give each proxy its own name") }
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for index in proxies.dropFirst() {
            let name = servers[index].name
            guard !name.isEmpty, name.allSatisfy(allowed.contains), !name.hasPrefix("."), name != "disk" else {
                throw invalid(
                    "server '\(name)': a second or further proxy sees its devices in <device directory>/<its name>, so its name "
                        + "must be letters, digits, '.', '_' or '-', not start with '.' and not be 'disk'")
            }
            servers[index].deviceSubdirectory = name
        }
    }

    private func makePort(_ network: NetworkRecord, records: CloudRecords, extra: Int) -> PortRecord {
        let count = records.servers.reduce(0) { $0 + $1.ports.filter { $0.networkID == network.id }.count } + extra
        let networkNumber = (records.networks.firstIndex { $0.id == network.id } ?? 0) + 1
        let host = count + 10
        return PortRecord(
            id: Identifiers.uuid(), networkID: network.id, address: "10.\(networkNumber).\(host / 250).\(host % 250 + 2)",
            mac: String(format: "fa:16:3e:%02x:%02x:%02x", networkNumber, host / 256, host % 256))
    }

    private func makeVolume(
        _ volume: Volume, projectID: String, userID: String, created: Date, storage: VolumeStorage
    ) throws -> VolumeRecord {
        let id = Self.volumeID(volume.name)
        try storage.createEmptyVolume(id, size: volume.size)
        try VolumeContent.write(volume.content ?? [], to: storage.volumePath(id), limit: Int64(volume.size) * storage.unit.bytes)
        return VolumeRecord(
            id: id, name: volume.unnamed == true ? nil : volume.name, description: nil, projectID: projectID, userID: userID, size: volume.size,
            status: "available", availabilityZone: "nova", bootable: false, snapshotID: nil, sourceVolumeID: nil,
            metadata: volume.metadata ?? [:], createdAt: created, updatedAt: nil, attachment: nil, pending: nil)
    }
}

/// Writes a seed volume's content generators into its file.
enum VolumeContent {
    /// Parses `4096`, `64K`, `4M`, `1G`.
    static func bytes(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let multipliers: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = trimmed.last, let multiplier = multipliers[last] {
            return Int64(trimmed.dropLast()).map { $0 * multiplier }
        }
        return Int64(trimmed)
    }

    static func write(_ segments: [EmulatorSeed.ContentSegment], to path: String, limit: Int64) throws {
        guard !segments.isEmpty else { return }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw EmulatorError.dataOperation(subject: path, "cannot open the volume file to write its content")
        }
        defer { try? handle.close() }
        var offset: Int64 = 0
        for segment in segments {
            var data: [UInt8] = []
            if let zero = segment.zero {
                guard let length = bytes(zero) else { throw bad(path, "zero: \(zero)") }
                offset += length
                continue
            } else if let random = segment.random {
                guard let length = bytes(random) else { throw bad(path, "random: \(random)") }
                var generator = FaultGenerator(seed: segment.seed ?? 1)
                data.reserveCapacity(Int(length))
                while data.count < length { data.append(UInt8(generator.nextUnit() * 256)) }
            } else if let type = segment.filesystem {
                let length = try segment.length.map { text in
                    guard let length = bytes(text) else { throw bad(path, "length: \(text)") }
                    return length
                } ?? (limit - offset)
                guard length > 0, offset + length <= limit else {
                    throw bad(path, "filesystem of \(length) bytes at \(offset) does not fit in the volume size \(limit)")
                }
                try FilesystemImage(type: type, length: length, label: segment.label, files: segment.files ?? [:])
                    .write(into: handle, at: offset, volumePath: path)
                offset += length
                continue
            } else if let text = segment.text {
                let unit = Array(text.utf8)
                let length = segment.length.flatMap(bytes) ?? Int64(unit.count)
                guard !unit.isEmpty else { continue }
                while data.count < length { data += unit }
                data = Array(data.prefix(Int(length)))
            }
            guard offset + Int64(data.count) <= limit else {
                throw bad(path, "content ends at \(offset + Int64(data.count)) bytes, past the volume size \(limit)")
            }
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: data)
            offset += Int64(data.count)
        }
    }

    private static func bad(_ path: String, _ reason: String) -> EmulatorError {
        EmulatorError.dataOperation(subject: path, "invalid content segment: \(reason)")
    }
}
