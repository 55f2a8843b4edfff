public import BlockDelta

import Foundation

/// The check of one volume backup's chain by ``RepositoryMaintenance/verify(_:jobID:parallelism:)``.
public struct VolumeVerification: Sendable, Codable, Hashable {
    /// The volume UUID.
    public var volumeID: String
    /// The volume backup checked (the chain ends with it).
    public var backupID: String
    /// Backups of the chain read.
    public var chainLength: Int
    /// Data blocks read and checked against their digests.
    public var dataBlocks: UInt64
    /// The error, when the chain is damaged or incomplete.
    public var error: String?

    /// Whether every block of the chain checked out.
    public var isIntact: Bool { error == nil }
}

/// What ``RepositoryMaintenance/prune(_:keepLast:dryRun:)`` kept and removed.
public struct PruneReport: Sendable, Codable, Hashable {
    /// Jobs kept because they are among the newest.
    public var kept: [String]
    /// Older jobs kept because a kept job's chains need one of their volume backups.
    public var keptForChains: [String]
    /// Jobs removed (or that would be, in a dry run).
    public var removed: [String]
}

/// Checks and thins a directory repository.
public enum RepositoryMaintenance {
    /// Reads every block of the chain of every volume of job `jobID` (the newest when nil) and checks it
    /// against its digest, writing nothing. A damaged chain is reported, the others are still checked.
    public static func verify(
        _ repository: BackupRepository, jobID: BackupID?, parallelism: ParallelIOConfiguration = .init()
    ) throws(BlockDeltaError) -> [VolumeVerification] {
        let job: BackupJobManifest
        if let jobID { job = try repository.manifest(ofJob: jobID) } else { job = try repository.latestJob() }
        var results: [VolumeVerification] = []
        for record in job.volumes {
            var result = VolumeVerification(volumeID: record.volumeID, backupID: record.backupID, chainLength: 0, dataBlocks: 0)
            do throws(BlockDeltaError) {
                guard let id = record.id else { throw .malformed(path: repository.directory, "backup id '\(record.backupID)' is not a UUID") }
                let chain = try repository.chain(endingAt: id)
                result.chainLength = chain.count
                result.dataBlocks = try ChainRestorer.verify(chain: chain.map(\.files), configuration: parallelism).dataBlocks
            } catch {
                result.error = "\(error)"
            }
            results.append(result)
        }
        return results
    }

    private static let pruningSuffix = ".pruning"

    /// Removes the folders of prunes a crash interrupted (renamed out of view, not yet deleted).
    private static func removeInterruptedPrunes(_ repository: BackupRepository) throws(BlockDeltaError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: repository.directory)) ?? []
        for name in names where name.hasPrefix(".") && name.hasSuffix(pruningSuffix) {
            try? FileManager.default.removeItem(atPath: "\(repository.directory)/\(name)")
        }
    }

    /// Keeps the newest `keepLast` jobs and every older job one of their chains needs (a Full or an
    /// Incremental under a kept point is never removed), and removes the other jobs whole. A job is
    /// removed by renaming its folder out of the repository's view first, so a crash never leaves half a
    /// job that looks finished.
    public static func prune(_ repository: BackupRepository, keepLast: Int, dryRun: Bool = false) throws(BlockDeltaError) -> PruneReport {
        guard keepLast >= 1 else {
            throw .invalidArgument("--keep-last must be at least 1: the newest job is the base of the next Incremental")
        }
        try removeInterruptedPrunes(repository)
        let jobs = try repository.jobs()
        let kept = Array(jobs.suffix(keepLast))
        var backups: [String: (jobID: String, parentID: String?)] = [:]
        for job in jobs { for record in job.volumes { backups[record.backupID] = (job.jobID, record.parentID) } }
        var needed = Set(kept.map(\.jobID))
        for job in kept {
            for record in job.volumes {
                // Walk the parents as far as they are stored: a chain already broken keeps what is left.
                var next: String? = record.backupID
                var steps = 0
                while let current = next, let backup = backups[current], steps <= backups.count {
                    needed.insert(backup.jobID)
                    next = backup.parentID
                    steps += 1
                }
            }
        }
        let keptIDs = Set(kept.map(\.jobID))
        let removed = jobs.filter { !needed.contains($0.jobID) }.map(\.jobID)
        if !dryRun {
            for jobID in removed {
                let folder = "\(repository.directory)/\(jobID)"
                let doomed = "\(repository.directory)/.\(jobID)\(pruningSuffix)"
                guard rename(folder, doomed) == 0 else { throw .io("rename to \(doomed)", path: folder, errno: errno) }
                try syncDirectory(repository.directory)
                do {
                    try FileManager.default.removeItem(atPath: doomed)
                } catch {
                    throw .failed(path: doomed, "cannot remove the pruned job's folder: \(error.localizedDescription)", hint: "remove it by hand")
                }
            }
        }
        return PruneReport(
            kept: kept.map(\.jobID), keptForChains: jobs.map(\.jobID).filter { needed.contains($0) && !keptIDs.contains($0) },
            removed: removed)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
