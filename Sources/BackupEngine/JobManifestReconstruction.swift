public import BlockDelta

import Foundation

/// Rebuilds the manifest of a job from its namespace files alone, for streams that carry no manifest (a
/// tar from `backup --to -`, and the Bacula plugin's restore stream).
///
/// Each `<folder>/<volume id>.bmp` is a volume backup: its header gives the backup id, parent, Full id,
/// level, volume id, block size and volume size, its records the totals; its `.bmpsha` sits beside it and
/// its data file is `<folder>/<volume id>.bvmdk` or `<folder>/<volume name>_<volume id>.bvmdk` (the name
/// is the recorded path-safe volume name). A folder `@openstack/nova/server/<server uuid>/` gives the
/// server; the `.conf` in the folder gives the Cinder size. Every other file is listed in `files`.
///
/// What the files do not hold is left out or derived: `fallbackReason` is nil, `createdAt` is the time in
/// the backup id, `source` is `cinder:<volume id>` for cloud paths and the volume id for `@local` images,
/// the job's `requestedLevel` is the level other than `full` found among its volumes (volumes of one job
/// differ only by falling back to a Full), and the job id is the oldest volume backup id (a cloud job's own
/// id is not in the stream; an image job's is exactly that).
public enum JobManifestReconstruction {
    /// Reads the namespace below `folder` (a job folder; `manifest.json` and lock files at its top are
    /// ignored) and returns the manifest of the job it holds: job `recordedJobID` when the stream said
    /// which (streams of `backup --to -` do), else the id of its oldest volume backup, else `jobID`.
    public static func manifest(
        ofFolder folder: String, jobID fallbackID: BackupID, recordedJobID: BackupID? = nil
    ) throws(BlockDeltaError) -> BackupJobManifest {
        let paths = try namespaceFiles(in: folder)
        let fileSet = Set(paths)
        var claimed: Set<String> = []
        var volumes: [VolumeBackupRecord] = []
        for regions in paths where regions.hasSuffix(".bmp") {
            let record = try volumeRecord(regions: regions, in: folder, files: fileSet)
            claimed.formUnion([record.regionsFile, record.digestsFile, record.dataFile])
            volumes.append(record)
        }
        for path in paths where !claimed.contains(path) && (path.hasSuffix(".bmpsha") || path.hasSuffix(".bvmdk")) {
            throw .malformed(
                path: "\(folder)/\(path)", "has no region list (.bmp) beside it",
                hint: "the stream is incomplete: a volume backup needs its .bmp, .bmpsha and .bvmdk")
        }
        guard !paths.isEmpty else {
            throw .malformed(path: folder, "holds no file of the backup namespace", hint: "the stream is empty or not an osbackup backup")
        }
        let ids = volumes.compactMap(\.id).sorted()
        let levels = Set(volumes.map(\.level))
        let jobID = recordedJobID ?? ids.first ?? fallbackID
        return BackupJobManifest(
            jobID: "\(jobID)", kind: paths.contains { $0.hasPrefix("\(BackupNamespace.root)/") } ? "cloud" : "image",
            createdAt: timestamp(of: jobID), requestedLevel: levels.first { $0 != "\(BackupLevel.full)" } ?? "\(BackupLevel.full)",
            volumes: volumes, files: paths.filter { !claimed.contains($0) })
    }

    /// The record of the volume backup whose region list is `regions`.
    private static func volumeRecord(regions: String, in folder: String, files: Set<String>) throws(BlockDeltaError) -> VolumeBackupRecord {
        let directory = (regions as NSString).deletingLastPathComponent
        let volumeID = String((regions as NSString).lastPathComponent.dropLast(".bmp".count))
        let reader = try RegionListReader(path: "\(folder)/\(regions)")
        let summary = try reader.validate()
        let descriptor = reader.file.descriptor
        guard descriptor.volumeID == volumeID else {
            throw .malformed(
                path: "\(folder)/\(regions)", "holds a backup of volume \(descriptor.volumeID), not of \(volumeID) as its name says",
                hint: "the stream was altered")
        }
        let digests = "\(directory)/\(volumeID).bmpsha"
        guard files.contains(digests) else {
            throw .malformed(path: "\(folder)/\(regions)", "its digest list \(volumeID).bmpsha is missing", hint: "the stream is incomplete")
        }
        let dataFiles = files.filter { path in
            (path as NSString).deletingLastPathComponent == directory
                && ((path as NSString).lastPathComponent == "\(volumeID).bvmdk" || (path as NSString).lastPathComponent.hasSuffix("_\(volumeID).bvmdk"))
        }
        guard dataFiles.count == 1, let data = dataFiles.first else {
            throw .malformed(
                path: "\(folder)/\(regions)",
                dataFiles.isEmpty ? "its block data <name>_\(volumeID).bvmdk is missing" : "has \(dataFiles.count) block data files",
                hint: "the stream is incomplete or altered")
        }
        let dataName = (data as NSString).lastPathComponent
        let label = dataName == "\(volumeID).bvmdk" ? "" : String(dataName.dropLast("_\(volumeID).bvmdk".count))
        let serverFolder = "\(BackupNamespace.servers)/"
        let serverID = directory.hasPrefix(serverFolder) ? String(directory.dropFirst(serverFolder.count)) : nil
        let isCloud = directory.hasPrefix("\(BackupNamespace.root)/")
        let backupID = descriptor.backupID
        // The data file's content bytes as stored (raw, or zstd frames), from its trailer: what the scan recorded.
        let stored = try FormatFileReader(path: "\(folder)/\(data)", expecting: .blockData).recordCount
        var record = VolumeBackupRecord(
            backupID: "\(backupID)", parentID: descriptor.parentID.map { "\($0)" }, fullID: "\(descriptor.fullID)",
            level: "\(descriptor.level)", fallbackReason: nil, createdAt: timestamp(of: backupID),
            source: isCloud ? "cinder:\(volumeID)" : volumeID, volumeID: volumeID, volumeName: label,
            volumeSize: descriptor.geometry.volumeSize, cinderSize: cinderSize(of: volumeID, folder: "\(folder)/\(directory)"),
            serverID: serverID, blockSize: descriptor.geometry.blockSize, regionsFile: regions, digestsFile: digests, dataFile: data,
            regions: summary.regionCount, dataBlocks: summary.dataBlocks, zeroBlocks: summary.zeroBlocks, dataBytes: summary.dataBytes)
        record.storedBytes = stored
        return record
    }

    /// The Cinder size recorded in the `.conf` of the volume's folder (nil without one).
    private static func cinderSize(of volumeID: String, folder: String) -> Int? {
        let owner = (folder as NSString).lastPathComponent
        guard let bytes = FileManager.default.contents(atPath: "\(folder)/\(owner).conf"),
            let configuration = try? ServerConfiguration.decode(Array(bytes))
        else { return nil }
        return configuration.volumes.first { $0.id == volumeID }?.size
    }

    /// Every regular file below `folder`, relative, sorted; the job folder's own files are skipped.
    private static func namespaceFiles(in folder: String) throws(BlockDeltaError) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else {
            throw .failed(path: folder, "cannot list the folder")
        }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String {
            guard enumerator.fileAttributes?[.type] as? FileAttributeType == .typeRegular else { continue }
            if path == BackupRepository.manifestName || path == BackupRepository.writerLockName { continue }
            paths.append(path)
        }
        return paths.sorted()
    }

    /// The ISO 8601 time of a time-ordered id (its first 48 bits are Unix milliseconds).
    private static func timestamp(of id: BackupID) -> String {
        let milliseconds = id.bytes.prefix(6).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
}
