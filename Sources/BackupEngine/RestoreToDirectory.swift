public import BlockDelta
public import Logging

import Foundation

/// One volume restored to a raw image.
public struct RestoredVolume: Sendable, Codable, Hashable {
    /// The volume UUID.
    public var volumeID: String
    /// The raw image written (its name ends in `<volume uuid>.raw`).
    public var path: String
    /// Backups applied.
    public var chainLength: Int
    /// Volume size in bytes.
    public var bytes: UInt64
}

/// Restores the volumes of a job of a directory repository to raw sparse images in a folder: the
/// namespace path is kept below the folder, each image named `<volume name>_<volume uuid>.raw`, with the
/// `.conf` and `.name` files beside. Every block is verified before it is written; a chain that fails
/// verification writes nothing (the chain restorer checks before writing and renames only at the end).
public enum RestoreToDirectory {
    /// Restores the volumes of job `jobID` (the newest job when nil) chosen by `servers` and `volumes`
    /// (all when both are empty) into `target`.
    public static func run(
        repository: BackupRepository, jobID: BackupID?, servers: [String], volumes: [String], target: String,
        parallelism: ParallelIOConfiguration = .init(), logger: Logger
    ) throws(BlockDeltaError) -> [RestoredVolume] {
        try run(
            plan: RestorePlan.make(repository: repository, jobID: jobID, servers: servers, volumes: volumes), target: target,
            parallelism: parallelism, logger: logger)
    }

    /// Restores the volumes of `plan` into `target`.
    public static func run(
        plan: RestorePlan, target: String, parallelism: ParallelIOConfiguration = .init(), logger: Logger
    ) throws(BlockDeltaError) -> [RestoredVolume] {
        let job = plan.job
        var restored: [RestoredVolume] = []
        for planned in plan.volumes {
            let record = planned.record
            let chain = planned.chain
            let folder = planned.folder
            let dataName = (record.dataFile as NSString).lastPathComponent
            let rawName = String(dataName.dropLast(".bvmdk".count)) + ".raw"
            let outputFolder = "\(target)/\(folder)"
            do {
                try FileManager.default.createDirectory(atPath: outputFolder, withIntermediateDirectories: true)
            } catch {
                throw .failed(path: outputFolder, "cannot create the folder: \(error.localizedDescription)")
            }
            let output = "\(outputFolder)/\(rawName)"
            var volumeLogger = logger
            volumeLogger[metadataKey: "osb-volume"] = "\(record.volumeID)"
            let result = try ChainRestorer.restore(chain: chain.map(\.files), to: output, configuration: parallelism, logger: volumeLogger)
            restored.append(RestoredVolume(volumeID: record.volumeID, path: output, chainLength: chain.count, bytes: result.volumeSize))
        }
        let jobFolder = plan.jobFolder
        // Beside the images: the `.conf` in each restored volume's folder, and that folder's `.name`, which
        // sits one level up as `<folder's uuid>_<name>.name`.
        let keptFolders = Set(plan.volumes.map(\.folder))
        for file in job.files {
            let folder = (file as NSString).deletingLastPathComponent
            let isConf = keptFolders.contains(folder)
            let isName = file.hasSuffix(".name") && keptFolders.contains { kept in
                (kept as NSString).deletingLastPathComponent == folder
                    && [(kept as NSString).lastPathComponent + "_", (kept as NSString).lastPathComponent + ".name"].contains {
                        (file as NSString).lastPathComponent.hasPrefix($0)
                    }
            }
            guard isConf || isName else { continue }
            let destination = "\(target)/\(file)"
            guard let bytes = FileManager.default.contents(atPath: "\(jobFolder)/\(file)") else {
                throw .failed(path: "\(jobFolder)/\(file)", "cannot read the file")
            }
            try? FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try DurableFile.write(Array(bytes), to: destination)
        }
        return restored
    }
}
