import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation
import Logging

/// What `restore --from` reads: one repository folder as it is, or, when tar streams are given (files,
/// compressed or not, or `-` for standard input), a spool repository in a hidden folder of the restore
/// target that holds one job per stream and a link to every job of the repository folders given with them.
/// The spool is removed by ``remove()``.
struct RestoreSource {
    /// The repository to restore from.
    let repository: BackupRepository
    /// The job to restore: `--job`, else the last source's (a stream's job, or a folder's newest).
    let jobID: BackupID?
    /// The spool folder to remove at the end (nil: a repository folder read in place).
    private let spool: String?

    /// Resolves the `--from` values, in the order given (streams in chain order: the Full first).
    static func open(_ sources: [String], job: BackupID?, spoolingInto target: String, logger: Logger) throws -> RestoreSource {
        guard !sources.isEmpty else { throw ValidationError("give --from: a repository folder, a tar file, or - for standard input") }
        guard sources.filter({ $0 == "-" }).count <= 1 else { throw ValidationError("--from - (standard input) can be given once") }
        for source in sources where source != "-" && !FileManager.default.fileExists(atPath: source) {
            throw ValidationError("--from \(source): no repository folder or tar file there")
        }
        if sources.count == 1, isDirectory(sources[0]) {
            return RestoreSource(repository: try BackupRepository(directory: sources[0], create: false), jobID: job, spool: nil)
        }
        let spoolFolder = "\(target)/.osbackup-spool-\(BackupID.generate())"
        let spool = try BackupRepository(directory: spoolFolder, create: true)
        do {
            var lastJob: BackupID?
            for source in sources {
                if source != "-", isDirectory(source) {
                    lastJob = try link(BackupRepository(directory: source, create: false), into: spool)
                } else {
                    let input: TarInput = source == "-" ? .standardInput : .file(source)
                    let manifest = try spool.importTar(input)
                    logger.notice(
                        "tar stream read", metadata: ["osb-source": "\(input.name)", "osb-job": "\(manifest.jobID)", "osb-volumes": "\(manifest.volumes.count)"])
                    lastJob = manifest.id
                }
            }
            return RestoreSource(repository: spool, jobID: job ?? lastJob, spool: spoolFolder)
        } catch {
            try? FileManager.default.removeItem(atPath: spoolFolder)
            throw error
        }
    }

    /// Removes the spool folder, if any.
    func remove() {
        if let spool { try? FileManager.default.removeItem(atPath: spool) }
    }

    /// Links every finished job of `repository` into `spool`; returns the newest.
    private static func link(_ repository: BackupRepository, into spool: BackupRepository) throws -> BackupID? {
        let jobs = try repository.jobs()
        for job in jobs {
            guard let id = job.id else { continue }
            guard !spool.containsJob(id) else {
                throw ValidationError("job \(id) of \(repository.directory) was already given by an earlier --from")
            }
            try FileManager.default.createSymbolicLink(atPath: spool.folder(ofJob: id), withDestinationPath: URL(fileURLWithPath: repository.folder(ofJob: id)).standardizedFileURL.path)
        }
        return jobs.last?.id
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
