import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation

/// `osbackup restore`: a job's volumes back from a repository.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore the volumes of a job (and the chains they build on) from a repository.",
        discussion: "--to-dir DIR writes each volume as a sparse raw image <name>_<volume uuid>.raw under its namespace path, with the .conf beside it.")

    @Option(help: "Repository folder, tar file of `backup --to -` (compressed or not), or - for standard input (repeatable: streams in chain order, the Full first).")
    var from: [String]

    @Option(help: "Job id (default: the newest job).")
    var job: String?

    @Option(help: "Server UUID whose volumes to restore (repeatable; default: every volume of the job).")
    var server: [String] = []

    @Option(help: "Volume UUID to restore (repeatable).")
    var volume: [String] = []

    @Option(help: "Folder to write raw images and .conf files into.")
    var toDir: String?

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        guard let toDir else {
            throw ValidationError("give --to-dir DIR (--to-cloud, --new-server and --in-place are not available yet)")
        }
        var jobID: BackupID?
        if let job {
            guard let id = BackupID(job) else { throw ValidationError("'\(job)' is not a job id (a UUID)") }
            jobID = id
        }
        let logger = try logging.makeLogger(label: "osbackup.restore")
        let source = try RestoreSource.open(from, job: jobID, spoolingInto: toDir, logger: logger)
        defer { source.remove() }
        let restored = try RestoreToDirectory.run(
            repository: source.repository, jobID: source.jobID, servers: server.map { $0.lowercased() },
            volumes: volume.map { $0.lowercased() }, target: toDir, logger: logger)
        for volume in restored {
            print("restored volume \(volume.volumeID) (chain of \(volume.chainLength), \(volume.bytes) bytes) to \(volume.path)")
        }
    }
}

/// `osbackup list jobs`: the jobs of a repository.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List what a repository holds.", subcommands: [Jobs.self])

    struct Jobs: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The jobs of a repository, oldest first, with their volumes.")

        @Option(help: "Repository folder.")
        var from: String

        @Flag(help: "Print the manifests as JSON.")
        var json = false

        func run() throws {
            let jobs = try BackupRepository(directory: from, create: false).jobs()
            if json {
                try printJSON(jobs)
                return
            }
            for job in jobs {
                print("\(job.jobID)  \(job.kind)  \(job.createdAt)  \(job.volumes.count) volumes")
                for volume in job.volumes {
                    print("    \(volume.volumeID)  \(volume.level)  \(volume.dataBytes) bytes  server \(volume.serverID ?? "-")  \(volume.dataFile)")
                }
            }
        }
    }
}
