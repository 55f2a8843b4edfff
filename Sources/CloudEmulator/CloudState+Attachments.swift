import Foundation
import Logging

/// Nova's `os-volume_attachments`: attach and detach with Cinder's status transitions, and the device
/// link in the proxy's device directory.
extension CloudState {
    func attachmentJSON(_ volume: VolumeRecord, _ call: ComputeCall, inCreateResponse: Bool = false) -> JSON {
        let attachment = volume.attachment!
        var members: [(String, JSON)] = [("device", .string(attachment.device))]
        if call.version < APIMicroversion(2, 89) || inCreateResponse { members.append(("id", .string(volume.id))) }
        members += [("serverId", .string(attachment.serverID)), ("volumeId", .string(volume.id))]
        if call.version >= APIMicroversion(2, 70) { members.append(("tag", .optional(attachment.tag))) }
        if call.version >= APIMicroversion(2, 79) { members.append(("delete_on_termination", .bool(attachment.deleteOnTermination))) }
        if call.version >= APIMicroversion(2, 89) && !inCreateResponse {
            members.append(("attachment_id", .string(attachment.id)))
            members.append(("bdm_uuid", .string(attachment.bdmID)))
        }
        return .object(members)
    }

    func listAttachments(_ serverID: String, _ call: ComputeCall) throws -> EmulatorResponse {
        _ = try serverIndex(serverID, call)
        return EmulatorResponse(
            status: 200, json: .object([("volumeAttachments", .array(attachedVolumes(serverID).map { attachmentJSON($0, call) }))]))
    }

    func showAttachment(_ serverID: String, _ volumeID: String, _ call: ComputeCall) throws -> EmulatorResponse {
        _ = try serverIndex(serverID, call)
        guard let volume = attachedVolumes(serverID).first(where: { $0.id == volumeID }) else {
            throw ServiceRejection(404, "Instance \(serverID) is not attached to volume \(volumeID)")
        }
        return EmulatorResponse(status: 200, json: .object([("volumeAttachment", attachmentJSON(volume, call))]))
    }

    /// Rejects a volume operation on a server that is locked, building or has a task state (409).
    private func checkServerState(_ server: ServerRecord, operation: String) throws(ServiceRejection) {
        if server.locked { throw ServiceRejection(409, "Instance \(server.id) is locked") }
        if let taskState = server.taskState {
            throw ServiceRejection(409, "Cannot '\(operation)' instance \(server.id) while it is in task_state \(taskState)")
        }
        let allowed = ["active", "paused", "stopped", "resized", "soft_deleted", "shelved", "shelved_offloaded"]
        if !allowed.contains(server.vmState) {
            throw ServiceRejection(409, "Cannot '\(operation)' instance \(server.id) while it is in vm_state \(server.vmState)")
        }
    }

    /// The next free device name of a server (`/dev/vda` is the root disk).
    func nextDeviceName(_ serverID: String) -> String {
        let used = Set(attachedVolumes(serverID).map(\.attachment!.device))
        let letters = "abcdefghijklmnopqrstuvwxyz".map(String.init)
        var names = letters.map { "/dev/vd\($0)" }
        names += letters.flatMap { first in letters.map { "/dev/vd\(first)\($0)" } }
        return names.first { !used.contains($0) } ?? "/dev/vdzz"
    }

    /// Reserves volume `volumeIndex` for a server: `reserved` now, then `attaching`, then `in-use`.
    func reserve(volumeIndex: Int, serverID: String, device: String, deleteOnTermination: Bool, tag: String?, now: Date) {
        records.volumes[volumeIndex].status = "reserved"
        records.volumes[volumeIndex].updatedAt = now
        records.volumes[volumeIndex].attachment = AttachmentRecord(
            id: Identifiers.uuid(), serverID: serverID, device: device, attachedAt: nil,
            deleteOnTermination: deleteOnTermination, tag: tag, bdmID: Identifiers.uuid())
        records.volumes[volumeIndex].pending = PendingTransition(status: "attaching", due: due(now))
    }

    func attachVolume(_ serverID: String, _ call: ComputeCall) throws -> EmulatorResponse {
        let serverIndex = try serverIndex(serverID, call)
        let server = records.servers[serverIndex]
        guard let body = call.request.jsonBody()?["volumeAttachment"], let volumeID = body["volumeId"]?.string else {
            throw ServiceRejection(400, "Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property")
        }
        try checkServerState(server, operation: "attach_volume")
        guard let volumeIndex = records.volumes.firstIndex(where: { $0.id == volumeID }),
            call.caller.isAdmin || records.volumes[volumeIndex].projectID == call.caller.projectID
        else { throw ServiceRejection(404, "Volume \(volumeID) could not be found.") }
        let volume = records.volumes[volumeIndex]
        if let attachment = volume.attachment {
            throw ServiceRejection(400, "Invalid volume: volume \(volumeID) is already attached to instances: \(attachment.serverID)")
        }
        guard volume.status == "available" else {
            throw ServiceRejection(
                400,
                "Invalid volume: Volume \(volumeID) status must be available or downloading to reserve, but the current status is \(volume.status).")
        }
        if let limit = server.maxDiskDevices, attachedVolumes(serverID).count + (server.rootVolumeID == nil ? 1 : 0) >= limit {
            throw ServiceRejection(
                403, "The maximum allowed number of disk devices (\(limit)) to attach to a single instance has been exceeded.")
        }
        let device = nextDeviceName(serverID)
        reserve(
            volumeIndex: volumeIndex, serverID: serverID, device: device,
            deleteOnTermination: call.version >= APIMicroversion(2, 79) ? (body["delete_on_termination"]?.bool ?? false) : false,
            tag: call.version >= APIMicroversion(2, 49) ? body["tag"]?.string : nil, now: Date())
        logger.info("volume attaching", metadata: ["osb-volume": "\(volumeID)", "osb-server": "\(serverID)"])
        if call.version >= APIMicroversion(2, 101) { return EmulatorResponse(status: 202, json: nil) }
        return EmulatorResponse(
            status: 200,
            json: .object([("volumeAttachment", attachmentJSON(records.volumes[volumeIndex], call, inCreateResponse: true))]))
    }

    func detachVolume(_ serverID: String, _ volumeID: String, _ call: ComputeCall) throws -> EmulatorResponse {
        let server = records.servers[try serverIndex(serverID, call)]
        guard let volumeIndex = records.volumes.firstIndex(where: { $0.id == volumeID && $0.attachment?.serverID == serverID })
        else { throw ServiceRejection(404, "Instance \(serverID) is not attached to volume \(volumeID)") }
        if server.rootVolumeID == volumeID { throw ServiceRejection(400, "Cannot detach a root device volume") }
        try checkServerState(server, operation: "detach_volume")
        let volume = records.volumes[volumeIndex]
        guard volume.status == "in-use", let attachment = volume.attachment else {
            throw ServiceRejection(
                400,
                "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.")
        }
        withdrawDevice(volumeID: volumeID, attachment: attachment)
        var updated = attachment
        updated.loopDevice = nil
        updated.devicePresent = false
        updated.deviceDue = nil
        let now = Date()
        records.volumes[volumeIndex].attachment = updated
        records.volumes[volumeIndex].status = "detaching"
        records.volumes[volumeIndex].updatedAt = now
        records.volumes[volumeIndex].pending = PendingTransition(status: "available", due: due(now))
        logger.info("volume detaching", metadata: ["osb-volume": "\(volumeID)", "osb-server": "\(serverID)"])
        return EmulatorResponse(status: 202, json: nil)
    }
}
