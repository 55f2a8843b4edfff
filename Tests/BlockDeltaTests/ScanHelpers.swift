import BlockDelta
import Foundation
import Logging
import TestSupport

let testLogger = Logger(label: "osbackup.tests")

/// Backs up `content` (written to `directory/source.img`) as one backup, comparing with `reference`, its
/// data file written with `encoding`.
func scan(
    _ content: [UInt8], in directory: String, name: String, blockSize: Int, backupID: BackupID = .generate(),
    reference: HashMapReader? = nil, level: BackupLevel? = nil, encoding: DataEncoding = .raw,
    configuration: ParallelIOConfiguration = ParallelIOConfiguration(chunkSize: 64 << 10, workerCount: 2)
) throws -> (files: VolumeBackupFiles, map: String, result: DeltaScanResult) {
    let sourcePath = "\(directory)/source.img"
    try DiskImage.write(content, to: sourcePath)
    return try scan(
        source: BlockSource(path: sourcePath, logger: testLogger), in: directory, name: name, blockSize: blockSize,
        backupID: backupID, reference: reference, level: level, encoding: encoding, configuration: configuration)
}

/// Backs up `source` as one backup into `directory/name.*`, comparing with `reference`.
func scan(
    source: BlockSource, in directory: String, name: String, blockSize: Int, backupID: BackupID = .generate(),
    reference: HashMapReader? = nil, level: BackupLevel? = nil, encoding: DataEncoding = .raw,
    configuration: ParallelIOConfiguration = ParallelIOConfiguration(chunkSize: 64 << 10, workerCount: 2)
) throws -> (files: VolumeBackupFiles, map: String, result: DeltaScanResult) {
    let level = level ?? (reference == nil ? .full : .incremental)
    let descriptor = try BackupDescriptor(
        geometry: VolumeGeometry(blockSize: blockSize, volumeSize: source.size), backupID: backupID,
        parentID: reference?.descriptor.backupID, fullID: reference?.descriptor.fullID ?? backupID, level: level,
        volumeID: "test-volume")
    let files = VolumeBackupFiles(
        regions: "\(directory)/\(name).bmp", digests: "\(directory)/\(name).bmpsha", data: "\(directory)/\(name).bvmdk")
    let map = "\(directory)/\(name).map"
    let result = try DeltaScanner.scan(
        source: source, descriptor: descriptor, reference: reference,
        files: files, dataEncoding: encoding, newMapPath: map, configuration: configuration, logger: testLogger)
    return (files, map, result)
}

/// Whether two backups' files (region list, digest list, data, new map) hold the same bytes.
func sameFiles(
    _ left: (files: VolumeBackupFiles, map: String, result: DeltaScanResult),
    _ right: (files: VolumeBackupFiles, map: String, result: DeltaScanResult)
) throws -> Bool {
    for (one, other) in zip(left.files.all + [left.map], right.files.all + [right.map]) {
        guard try DiskImage.read(one) == DiskImage.read(other) else { return false }
    }
    return true
}

/// The blocks whose content differs between `old` and `new` (all blocks past the end of `old`).
func changedBlocks(from old: [UInt8], to new: [UInt8], blockSize: Int) -> Set<UInt64> {
    var changed = Set<UInt64>()
    let blocks = (new.count + blockSize - 1) / blockSize
    for block in 0..<blocks {
        let start = block * blockSize
        let end = min(new.count, start + blockSize)
        if end > old.count || old[start..<end] != new[start..<end] { changed.insert(UInt64(block)) }
    }
    return changed
}

/// Every block listed in the region list of `files`.
func listedBlocks(_ files: VolumeBackupFiles) throws -> (data: Set<UInt64>, zero: Set<UInt64>) {
    let cursor = try RegionListReader(path: files.regions).makeCursor()
    var data = Set<UInt64>()
    var zero = Set<UInt64>()
    while let region = try cursor.next() {
        for block in region.firstBlock..<region.endBlock {
            if region.kind == .data { data.insert(block) } else { zero.insert(block) }
        }
    }
    return (data, zero)
}
