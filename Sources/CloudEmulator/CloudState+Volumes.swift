import Foundation
import Logging

/// Cinder volume and snapshot changes and their asynchronous completion.
extension CloudState {
    func createVolume(_ call: BlockStorageCall) throws -> EmulatorResponse {
        guard let body = call.request.jsonBody()?["volume"] else {
            throw ServiceRejection(400, "Missing required element 'volume' in request body.")
        }
        var size = body["size"]?.int
        if let given = body["size"], !given.isNull, size == nil {
            throw ServiceRejection(400, "Invalid input for field/attribute size. Value: \(given.text). \(given.text) is not valid under any of the given schemas")
        }
        if let size, size < 1 {
            throw ServiceRejection(400, "Invalid input for field/attribute size. Value: \(size). \(size) is less than the minimum of 1")
        }
        var source: String?
        var sourceSize = 0
        let snapshotID = body["snapshot_id"]?.string
        let sourceVolumeID = body["source_volid"]?.string
        if let snapshotID {
            let snapshot = records.snapshots[try snapshotIndex(snapshotID, call)]
            guard snapshot.status == "available" else {
                throw ServiceRejection(400, "Invalid snapshot: Originating snapshot status must be one of 'available' values")
            }
            source = storage.snapshotPath(snapshot.id)
            sourceSize = snapshot.size
        } else if let sourceVolumeID {
            let volume = records.volumes[try volumeIndex(sourceVolumeID, call)]
            guard volume.status == "available" || volume.status == "in-use" else {
                throw ServiceRejection(400, "Invalid volume: Volume \(volume.id) status must be available or in-use, but current status is: \(volume.status).")
            }
            source = storage.volumePath(volume.id)
            sourceSize = volume.size
        }
        if source != nil {
            size = size ?? sourceSize
            if let size, size < sourceSize {
                throw ServiceRejection(
                    400,
                    "Volume size '\(size)'GB cannot be smaller than the snapshot size \(sourceSize)GB. They must be >= original snapshot size.")
            }
        }
        guard let size else {
            throw ServiceRejection(400, "Invalid input for field/attribute volume. Value: \(body.text). 'size' is a required property")
        }
        try checkQuota(projectID: call.caller.projectID, volumes: 1, snapshots: 0, size: size)
        let now = Date()
        let volume = VolumeRecord(
            id: Identifiers.uuid(), name: body["name"]?.string, description: body["description"]?.string,
            projectID: call.caller.projectID, userID: call.caller.userID, size: size, status: "creating",
            availabilityZone: body["availability_zone"]?.string ?? "nova", bootable: false, snapshotID: snapshotID,
            sourceVolumeID: sourceVolumeID, metadata: body["metadata"]?.stringMap ?? [:], createdAt: now, updatedAt: nil,
            attachment: nil, pending: PendingTransition(status: "available", due: due(now)))
        if let source {
            try storage.copy(source, to: storage.volumePath(volume.id), size: size)
        } else {
            try storage.createEmptyVolume(volume.id, size: size)
        }
        records.volumes.append(volume)
        logger.info("volume created", metadata: ["osb-volume": "\(volume.id)", "osb-size": "\(size)"])
        return EmulatorResponse(status: 202, json: .object([("volume", volumeJSON(volume, call, includeTenant: false))]))
    }

    func updateVolume(_ id: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        let index = try volumeIndex(id, call)
        guard let body = call.request.jsonBody()?["volume"] else {
            throw ServiceRejection(400, "Missing required element 'volume' in request body.")
        }
        if let name = body["name"] { records.volumes[index].name = name.string }
        if let description = body["description"] { records.volumes[index].description = description.string }
        if let metadata = body["metadata"]?.stringMap { records.volumes[index].metadata = metadata }
        records.volumes[index].updatedAt = Date()
        return EmulatorResponse(status: 200, json: .object([("volume", volumeJSON(records.volumes[index], call))]))
    }

    func setVolumeMetadata(_ id: String, _ call: BlockStorageCall, replace: Bool) throws -> EmulatorResponse {
        let index = try volumeIndex(id, call)
        guard let metadata = call.request.jsonBody()?["metadata"]?.stringMap else {
            throw ServiceRejection(400, "Malformed request body")
        }
        if replace {
            records.volumes[index].metadata = metadata
        } else {
            records.volumes[index].metadata.merge(metadata) { $1 }
        }
        return EmulatorResponse(status: 200, json: .object([("metadata", .stringMap(records.volumes[index].metadata))]))
    }

    func deleteVolume(_ id: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        let index = try volumeIndex(id, call)
        let volume = records.volumes[index]
        let cascade = call.request.queryValue("cascade").flatMap { JSON.string($0).bool } ?? false
        let snapshots = records.snapshots.indices.filter { records.snapshots[$0].volumeID == id }
        let deletable = ["available", "error", "error_restoring", "error_extending", "error_managing"]
        let snapshotsBlock = !snapshots.isEmpty
            && (!cascade || snapshots.contains { !["available", "error", "deleting"].contains(records.snapshots[$0].status) })
        if !deletable.contains(volume.status) || volume.attachment != nil || snapshotsBlock {
            throw ServiceRejection(
                400,
                "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.")
        }
        let now = Date()
        for snapshotIndex in snapshots {
            records.snapshots[snapshotIndex].status = "deleting"
            records.snapshots[snapshotIndex].updatedAt = now
            records.snapshots[snapshotIndex].pending = PendingTransition(status: "deleted", due: due(now))
        }
        records.volumes[index].status = "deleting"
        records.volumes[index].updatedAt = now
        records.volumes[index].pending = PendingTransition(status: "deleted", due: due(now))
        logger.info("volume deleting", metadata: ["osb-volume": "\(id)"])
        return EmulatorResponse(status: 202, json: nil)
    }

    func volumeAction(_ id: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        let index = try volumeIndex(id, call)
        guard let body = call.request.jsonBody(), let (action, argument) = body.members?.first else {
            throw ServiceRejection(400, "Malformed request body")
        }
        switch action {
        case "os-reset_status":
            guard call.caller.isAdmin else {
                throw ServiceRejection(403, "Policy doesn't allow volume_extension:volume_admin_actions:reset_status to be performed.")
            }
            if let status = argument["status"]?.string {
                if status == "in-use" && records.volumes[index].attachment == nil {
                    throw ServiceRejection(400, "Cannot reset-state to in-use because volume does not have any attachments.")
                }
                records.volumes[index].status = status
                records.volumes[index].pending = nil
            }
            if argument["attach_status"]?.string == "detached", let attachment = records.volumes[index].attachment {
                withdrawDevice(volumeID: id, attachment: attachment)
                records.volumes[index].attachment = nil
            }
            records.volumes[index].updatedAt = Date()
            return EmulatorResponse(status: 202, json: nil)
        case "os-set_bootable":
            records.volumes[index].bootable = argument["bootable"]?.bool ?? false
            return EmulatorResponse(status: 200, json: nil)
        default:
            throw ServiceRejection(400, "There is no such action: \(action)")
        }
    }

    /// Applies a due volume transition.
    func completeVolumeTransition(at index: Int, to status: String, now: Date) {
        let id = records.volumes[index].id
        switch status {
        case "deleted":
            if let attachment = records.volumes[index].attachment {
                withdrawDevice(volumeID: id, attachment: attachment)
            }
            storage.remove(storage.volumePath(id))
            records.volumes.remove(at: index)
            logger.info("volume deleted", metadata: ["osb-volume": "\(id)"])
            return
        case "attaching":
            records.volumes[index].pending = PendingTransition(status: "in-use", due: due(now))
        case "in-use":
            if var attachment = records.volumes[index].attachment {
                attachment.attachedAt = now
                let delay = configuration.faults.deviceDelayMilliseconds
                records.volumes[index].status = status
                if delay > 0 {
                    attachment.deviceDue = now.addingTimeInterval(Double(delay) / 1000)
                } else {
                    exposeDevice(volumeIndex: index, attachment: &attachment)
                }
                records.volumes[index].attachment = attachment
            }
        case "available":
            if records.volumes[index].status == "detaching" { records.volumes[index].attachment = nil }
        default:
            break
        }
        records.volumes[index].status = status
        records.volumes[index].updatedAt = now
    }

    // MARK: Snapshots

    func createSnapshot(_ call: BlockStorageCall) throws -> EmulatorResponse {
        guard let body = call.request.jsonBody()?["snapshot"], let volumeID = body["volume_id"]?.string else {
            throw ServiceRejection(400, "Missing required element 'snapshot' in request body.")
        }
        let volume = records.volumes[try volumeIndex(volumeID, call)]
        var force: Bool?
        if let value = body["force"] {
            guard let parsed = value.bool else {
                throw ServiceRejection(400, "Invalid value '\(value.text)' for force.")
            }
            force = parsed
        }
        let since366 = call.version >= APIMicroversion(3, 66)
        if since366, force == false {
            throw ServiceRejection(
                400,
                "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored.")
        }
        let allowsInUse = since366 || force == true
        let allowed = allowsInUse ? ["available", "in-use"] : ["available"]
        guard allowed.contains(volume.status) else {
            throw ServiceRejection(
                400,
                "Invalid volume: Volume \(volume.id) status must be \(allowed.joined(separator: " or ")), but current status is: \(volume.status).")
        }
        // Like Cinder, the snapshot belongs to the caller's project (and uses its quota), whoever owns the volume.
        try checkQuota(projectID: call.caller.projectID, volumes: 0, snapshots: 1, size: volume.size)
        let now = Date()
        let snapshot = SnapshotRecord(
            id: Identifiers.uuid(), name: body["name"]?.string, description: body["description"]?.string,
            volumeID: volume.id, projectID: call.caller.projectID, userID: call.caller.userID, size: volume.size,
            status: "creating", metadata: body["metadata"]?.stringMap ?? [:], createdAt: now, updatedAt: nil,
            pending: PendingTransition(status: "available", due: due(now)))
        try storage.copy(storage.volumePath(volume.id), to: storage.snapshotPath(snapshot.id), size: volume.size)
        records.snapshots.append(snapshot)
        logger.info("snapshot created", metadata: ["osb-snapshot": "\(snapshot.id)", "osb-volume": "\(volume.id)"])
        return EmulatorResponse(status: 202, json: .object([("snapshot", snapshotJSON(snapshot, call, extended: false))]))
    }

    func deleteSnapshot(_ id: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        let index = try snapshotIndex(id, call)
        guard ["available", "error"].contains(records.snapshots[index].status) else {
            throw ServiceRejection(
                400, "Invalid snapshot: Volume Snapshot status must be available or error and must not be part of a group.")
        }
        let now = Date()
        records.snapshots[index].status = "deleting"
        records.snapshots[index].updatedAt = now
        records.snapshots[index].pending = PendingTransition(status: "deleted", due: due(now))
        return EmulatorResponse(status: 202, json: nil)
    }

    func snapshotAction(_ id: String, _ call: BlockStorageCall) throws -> EmulatorResponse {
        let index = try snapshotIndex(id, call)
        guard let body = call.request.jsonBody(), let (action, argument) = body.members?.first else {
            throw ServiceRejection(400, "Malformed request body")
        }
        guard action == "os-reset_status" else { throw ServiceRejection(400, "There is no such action: \(action)") }
        guard call.caller.isAdmin else {
            throw ServiceRejection(403, "Policy doesn't allow volume_extension:snapshot_admin_actions:reset_status to be performed.")
        }
        if let status = argument["status"]?.string {
            records.snapshots[index].status = status
            records.snapshots[index].pending = nil
            records.snapshots[index].updatedAt = Date()
        }
        return EmulatorResponse(status: 202, json: nil)
    }
}
