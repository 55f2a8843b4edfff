import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation

/// `osbackup verify`: reads every block of a job's chains and checks it, writing nothing.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every block of the chains of a job's volumes against their digests, without restoring.",
        discussion: "Exit 0 when every chain is intact, 1 when one is damaged or incomplete (each is named).")

    @Option(help: "Repository folder.")
    var from: String

    @Option(help: "Job id (default: the newest job).")
    var job: String?

    @Flag(help: "Print the result of each volume as JSON.")
    var json = false

    func run() throws {
        let jobID = try job.map { job in
            guard let id = BackupID(job) else { throw ValidationError("'\(job)' is not a job id (a UUID)") }
            return id
        }
        let results = try RepositoryMaintenance.verify(BackupRepository(directory: from, create: false), jobID: jobID)
        if json {
            try printJSON(results)
        } else {
            for result in results {
                print(
                    result.error.map { "DAMAGED  \(result.volumeID)  \($0)" }
                        ?? "ok       \(result.volumeID)  chain of \(result.chainLength), \(result.dataBlocks) blocks checked")
            }
        }
        if !results.allSatisfy(\.isIntact) { throw ExitCode(ExitStatus.failure) }
    }
}

/// `osbackup prune`: removes old jobs whole, never one a kept job's chains need.
struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Keep the newest N jobs and every older job their chains need; remove the others whole.")

    @Option(help: "Repository folder.")
    var from: String

    @Option(help: "How many of the newest jobs to keep (at least 1).")
    var keepLast: Int

    @Flag(help: "Only list what would be removed.")
    var dryRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let report = try RepositoryMaintenance.prune(BackupRepository(directory: from, create: false), keepLast: keepLast, dryRun: dryRun)
        if json { return try printJSON(report) }
        for id in report.kept { print("keep    \(id)") }
        for id in report.keptForChains { print("keep    \(id)  (a kept job's chain builds on it)") }
        for id in report.removed { print((dryRun ? "would remove  " : "removed ") + id) }
    }
}
