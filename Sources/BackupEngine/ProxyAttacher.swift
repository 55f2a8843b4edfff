import BlockDelta
import Logging
import OpenStackClient

import Foundation

/// Attaches volumes to the proxy for a job, backup or restore: each attachment is journaled before Nova is
/// asked, attaches wait for a slot of the ``AttachGate`` (which narrows when Nova answers 403 for too many
/// disk devices), and the device is found by its serial.
struct ProxyAttacher: Sendable {
    let cloud: CloudServices
    let journal: ResourceJournal
    let sweeper: ResourceSweeper
    let gate: AttachGate
    let proxyServerID: String
    let devices: DeviceLocator
    let jobID: String

    /// Attaches `volumeID` to the proxy and returns its device path. The journal entry and the attach slot
    /// are recorded in `track`, so ``WorkflowTrack/undo(with:)`` detaches it whatever happens next. The
    /// waits for a slot and the attach itself (requests, `in-use`, the device) are timed apart in `phases`.
    func attach(
        volumeID: String, name: String, requestTag: String, sourceVolumeID: String, track: WorkflowTrack,
        phases: VolumePhaseClock = VolumePhaseClock(), logger: Logger
    ) async throws -> String {
        await phases.time(.attachSlotWait) { await gate.acquire() }
        track.holdsSlot.withLock { $0 = true }
        let attachKey = try journal.record(
            JournalEntry(
                kind: .attachment, id: volumeID, requestTag: requestTag, name: name, sourceVolumeID: sourceVolumeID,
                volumeID: volumeID, serverID: proxyServerID))
        track.keys.withLock { $0.append(attachKey) }
        while true {
            let refusal: OpenStackError
            do {
                _ = try await phases.time(.attach) { () async throws(OpenStackError) in
                    try await cloud.compute.attachVolume(serverID: proxyServerID, volumeID: volumeID)
                }
                break
            } catch {
                guard error.status == 403, error.message.lowercased().contains("disk devices") else { throw error }
                refusal = error
            }
            track.holdsSlot.withLock { $0 = false }
            await gate.release()
            guard await gate.lowerAfterRefusal() else {
                throw BackupError(
                    .busy, resource: "proxy server \(proxyServerID)",
                    "Nova refuses another disk on the proxy and none of this job's volumes is attached: \(refusal.message)",
                    hint: "detach volumes from the proxy or raise max_disk_devices; see docs/operations.md")
            }
            logger.notice("the proxy has no free disk slot: fewer volumes in parallel", metadata: ["osb-error": "\(refusal.message)"])
            await phases.time(.attachSlotWait) { await gate.acquire() }
            track.holdsSlot.withLock { $0 = true }
        }
        let device = try await phases.time(.attach) {
            _ = try await cloud.blockStorage.waitForVolume(id: volumeID, statuses: ["in-use"])
            return try await devices.waitForDevice(volumeID: volumeID)
        }
        logger.info("volume attached to the proxy", metadata: ["osb-device": "\(device)", "osb-attached-volume": "\(volumeID)"])
        return device
    }

    /// Detaches what `track` attached (its attachment entries), waits for `available`, and frees the slot.
    func detach(_ track: WorkflowTrack) async throws(BackupError) {
        for key in track.keys.withLock({ $0 }) {
            guard let entry = journal.pending.first(where: { $0.key == key })?.entry, entry.kind == .attachment else { continue }
            try await sweeper.undo(entry, jobID: jobID)
            do {
                try journal.remove(key)
            } catch {
                throw BackupError.engine(error, resource: "resource journal")
            }
            track.keys.withLock { $0.removeAll { $0 == key } }
        }
        if track.holdsSlot.withLock({ $0 }) {
            track.holdsSlot.withLock { $0 = false }
            await gate.release()
        }
    }
}

/// What one volume's workflow has created so far: its journal keys and whether it holds an attach slot.
final class WorkflowTrack: Sendable {
    let keys = LockedValue<[UInt64]>([])
    let holdsSlot = LockedValue(false)

    /// Undoes, newest first, every resource still tracked (detach, delete the volume, delete the snapshot)
    /// and frees the attach slot; it runs to its end even when the task is cancelled. Returns what could
    /// not be undone (it stays in the journal for the job's end and the next sweep).
    func undo(with attacher: ProxyAttacher) async -> [BackupError] {
        let journal = attacher.journal
        let sweeper = attacher.sweeper
        let jobID = attacher.jobID
        let tracked = keys.withLock { $0 }
        let entries = journal.pending.filter { tracked.contains($0.key) }
        let failures = await withoutCancellation {
            var failures: [BackupError] = []
            for (key, entry) in entries {
                do {
                    try await sweeper.undo(entry, jobID: jobID)
                    try journal.remove(key)
                } catch {
                    failures.append(BackupError.from(error, resource: "\(entry.kind) \(entry.id ?? entry.name)"))
                }
            }
            return failures
        }
        if holdsSlot.withLock({ $0 }) {
            holdsSlot.withLock { $0 = false }
            await attacher.gate.release()
        }
        return failures
    }
}
