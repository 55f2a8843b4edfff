public import Logging
import OpenStackClient

/// Undoes temporary cloud resources: the entries of a journal (newest first), and tagged leftovers that no
/// journal knows (a lost working dir).
///
/// It deletes only what carries osbackup's tags for the job in question: a resource found by id or by
/// request tag whose `osbackup_job` is not that job is left alone and reported.
public struct ResourceSweeper: Sendable {
    /// The cloud.
    public let cloud: CloudServices
    /// Log of what is undone.
    public let logger: Logger

    /// Creates a sweeper.
    public init(cloud: CloudServices, logger: Logger) {
        self.cloud = cloud
        self.logger = logger
    }

    /// Undoes every entry still in `journal`, newest first; each entry undone leaves the journal. Returns
    /// the errors of entries that could not be undone (they stay in the journal for the next sweep).
    @discardableResult
    public func replay(_ journal: ResourceJournal) async -> [BackupError] {
        var errors: [BackupError] = []
        for (key, entry) in journal.pending {
            do {
                try await undo(entry, jobID: journal.jobID)
                try journal.remove(key)
            } catch {
                let failure = BackupError.from(error, resource: "\(entry.kind) \(entry.id ?? entry.name)")
                logger.warning("temporary resource not removed", metadata: ["osb-job": "\(journal.jobID)", "osb-error": "\(failure)"])
                errors.append(failure)
            }
        }
        return errors
    }

    /// Undoes one resource: detaches an attachment, deletes a volume or a snapshot, and waits until it is
    /// gone. A resource that no longer exists is done.
    public func undo(_ entry: JournalEntry, jobID: String) async throws(BackupError) {
        let storage = cloud.blockStorage
        do throws(OpenStackError) {
            switch entry.kind {
            case .attachment:
                guard let volumeID = entry.volumeID, let serverID = entry.serverID else { return }
                try await detachIfAttached(volumeID: volumeID, serverID: serverID)
            case .volume:
                guard let volume = try await findVolume(entry) else { return }
                guard volume.metadata?[CloudTags.job] == jobID else {
                    // A restored volume released to the operator just before a crash: no longer ours.
                    logger.notice(
                        "volume no longer tagged for this job: left alone", metadata: ["osb-volume": "\(volume.id)", "osb-job": "\(jobID)"])
                    return
                }
                var current = volume
                if ["creating", "attaching", "reserved", "detaching", "downloading"].contains(current.status) {
                    current = try await storage.waitForVolume(id: volume.id, statuses: ["available", "in-use", "error"])
                }
                if let foreign = current.attachments.first(where: { $0.serverID != volume.metadata?[CloudTags.proxy] }) {
                    // Attached to a server that is not the proxy (a restore's new server): never pulled from under it.
                    logger.warning(
                        "tagged volume attached to another server: left alone",
                        metadata: ["osb-volume": "\(volume.id)", "osb-server": "\(foreign.serverID)", "osb-job": "\(jobID)"])
                    return
                }
                for attachment in current.attachments { try await detachIfAttached(volumeID: volume.id, serverID: attachment.serverID) }
                logger.info("deleting temporary volume", metadata: ["osb-volume": "\(volume.id)", "osb-job": "\(jobID)"])
                try await ignoringNotFound { () async throws(OpenStackError) in try await storage.deleteVolume(id: volume.id) }
                try await storage.waitForVolumeDeleted(id: volume.id)
            case .server:
                guard let id = entry.id,
                    let server = try await optionalResource({ () async throws(OpenStackError) in try await cloud.compute.server(id: id) })
                else { return }
                guard server.metadata?[CloudTags.job] == jobID else {
                    logger.notice("server no longer tagged for this job: left alone", metadata: ["osb-server": "\(id)", "osb-job": "\(jobID)"])
                    return
                }
                logger.info("deleting the server of a failed restore", metadata: ["osb-server": "\(id)", "osb-job": "\(jobID)"])
                try await cloud.compute.deleteServer(id: id)
            case .snapshot:
                guard let snapshot = try await findSnapshot(entry) else { return }
                guard snapshot.metadata?[CloudTags.job] == jobID else {
                    throw OpenStackError.invalidResponse(
                        service: "block-storage", operation: "sweep", status: nil, requestID: nil,
                        "snapshot \(snapshot.id) is not tagged \(CloudTags.job)=\(jobID): left alone")
                }
                if snapshot.status == "creating" {
                    _ = try await storage.waitForSnapshot(id: snapshot.id, statuses: ["available", "error"])
                }
                logger.info("deleting snapshot", metadata: ["osb-snapshot": "\(snapshot.id)", "osb-job": "\(jobID)"])
                try await ignoringNotFound { () async throws(OpenStackError) in try await storage.deleteSnapshot(id: snapshot.id) }
                try await storage.waitForSnapshotDeleted(id: snapshot.id)
            }
        } catch {
            throw BackupError.cloud(error, resource: "\(entry.kind) \(entry.id ?? entry.name)")
        }
    }

    /// Tagged temporary resources of `proxyServerID` in the caller's project whose job is not alive here,
    /// as journal entries grouped by job (volumes before snapshots within a job).
    public func taggedLeftovers(proxyServerID: String, isLive: (String) -> Bool) async throws(BackupError) -> [String: [JournalEntry]] {
        let tags = [CloudTags.proxy: proxyServerID]
        var byJob: [String: [JournalEntry]] = [:]
        do throws(OpenStackError) {
            for snapshot in try await cloud.blockStorage.snapshots(metadata: tags) {
                guard let job = snapshot.metadata?[CloudTags.job], snapshot.metadata?[CloudTags.proxy] == proxyServerID, !isLive(job) else { continue }
                byJob[job, default: []].append(
                    JournalEntry(
                        kind: .snapshot, id: snapshot.id, requestTag: snapshot.metadata?[CloudTags.request] ?? "",
                        name: snapshot.name ?? "", sourceVolumeID: snapshot.volumeID))
            }
            for volume in try await cloud.blockStorage.volumes(VolumeFilter(metadata: tags)) {
                guard let job = volume.metadata?[CloudTags.job], volume.metadata?[CloudTags.proxy] == proxyServerID, !isLive(job) else { continue }
                // Listed after the snapshots: replay undoes the newest entry first, so volumes go first.
                byJob[job, default: []].append(
                    JournalEntry(
                        kind: .volume, id: volume.id, requestTag: volume.metadata?[CloudTags.request] ?? "", name: volume.name ?? "",
                        sourceVolumeID: volume.metadata?[CloudTags.sourceVolume] ?? ""))
            }
        } catch {
            throw BackupError.cloud(error, resource: "tagged leftovers of proxy \(proxyServerID)")
        }
        return byJob
    }

    private func detachIfAttached(volumeID: String, serverID: String) async throws(OpenStackError) {
        let storage = cloud.blockStorage
        guard var volume = try await optionalResource({ () async throws(OpenStackError) in try await storage.volume(id: volumeID) }) else { return }
        if ["attaching", "reserved", "detaching"].contains(volume.status) {
            volume = try await storage.waitForVolume(id: volumeID, statuses: ["available", "in-use", "error"])
        }
        guard volume.attachments.contains(where: { $0.serverID == serverID }) else { return }
        logger.info("detaching the volume from the proxy", metadata: ["osb-volume": "\(volumeID)", "osb-server": "\(serverID)"])
        try await ignoringNotFound { () async throws(OpenStackError) in
            try await cloud.compute.detachVolume(serverID: serverID, volumeID: volumeID)
        }
        _ = try await storage.waitForVolume(id: volumeID, statuses: ["available"])
    }

    private func findVolume(_ entry: JournalEntry) async throws(OpenStackError) -> Volume? {
        let storage = cloud.blockStorage
        if let id = entry.id { return try await optionalResource { () async throws(OpenStackError) in try await storage.volume(id: id) } }
        return try await storage.volumes(VolumeFilter(metadata: [CloudTags.request: entry.requestTag])).first
    }

    private func findSnapshot(_ entry: JournalEntry) async throws(OpenStackError) -> Snapshot? {
        let storage = cloud.blockStorage
        if let id = entry.id { return try await optionalResource { () async throws(OpenStackError) in try await storage.snapshot(id: id) } }
        return try await storage.snapshots(volumeID: entry.sourceVolumeID, metadata: [CloudTags.request: entry.requestTag]).first
    }
}

/// Runs `body`; a 404 (already gone) counts as done.
func ignoringNotFound(_ body: () async throws(OpenStackError) -> Void) async throws(OpenStackError) {
    _ = try await optionalResource(body)
}

/// Runs `body` to its end even when the calling task is cancelled (cleanup after a SIGTERM).
func withoutCancellation<Value: Sendable>(_ body: @escaping @Sendable () async -> Value) async -> Value {
    await Task { await body() }.value
}
