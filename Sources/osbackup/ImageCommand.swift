import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation

/// `osbackup image`: the engine on a local raw image file or block device, no cloud.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Back up, restore and verify a local raw image file or block device (no cloud).",
        subcommands: [Backup.self, Restore.self, Verify.self, List.self]
    )

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up SOURCE into a repository folder; prints the new backup's id as the last line.")

        @Argument(help: "The raw image file or block device to back up.")
        var source: String

        @Option(help: "Working directory that keeps each volume's hash map between backups.")
        var state: String

        @Option(help: "Repository folder the backup is written into (created if missing).")
        var to: String

        @Option(help: "full, incremental or differential. Without a usable earlier map a Full is taken.")
        var level: String = "incremental"

        @Option(help: "Block size in bytes (power of two, 4096 to 67108864). Default: keep the existing map's, else 65536.")
        var blockSize: Int?

        @Option(help: "Volume id to record (default: derived from the source's absolute path).")
        var volumeID: String?

        @Flag(
            inversion: .prefixedNo,
            help: "Read the source with O_DIRECT, bypassing the page cache (default: on block devices, not on files).")
        var directIO: Bool?

        @Option(help: "Reader/hasher threads (default: one per core).")
        var threads: Int?

        @Option(help: "How block data is stored: none, zstd or zstd:LEVEL (default: \(DataEncoding.directoryDefault)).")
        var compression: String = "\(DataEncoding.directoryDefault)"

        @OptionGroup var logging: LoggingOptions

        func run() throws {
            let level = try parseLevel(level)
            let dataEncoding: DataEncoding
            do {
                dataEncoding = try DataEncoding(parsing: compression)
            } catch {
                throw ValidationError(error.description)
            }
            let logger = try logging.makeLogger(label: "osbackup.image")
            let outcome = try ImageBackupJob.backup(
                ImageBackupRequest(
                    source: source, stateDirectory: state, repositoryDirectory: to, level: level, blockSize: blockSize,
                    volumeID: volumeID, directIO: directIO.map { $0 ? .always : .never } ?? .automatic, parallelism: ParallelIOConfiguration(workerCount: threads),
                    dataEncoding: dataEncoding),
                logger: logger)
            let manifest = outcome.record
            let rate = Double(outcome.scan.bytesRead) / max(outcome.seconds, 1e-6) / 1e6
            print(
                "\(manifest.level) backup of \(source): \(outcome.scan.blocksScanned) blocks of \(manifest.blockSize) read, "
                    + "\(manifest.dataBlocks) data blocks (\(manifest.dataBytes) bytes, \(outcome.scan.storedBytes) stored) and "
                    + "\(manifest.zeroBlocks) zero blocks stored in \(manifest.regions) regions, \(String(format: "%.0f", rate)) MB/s")
            if let reason = manifest.fallbackReason { print("Full instead of \(self.level): \(reason)") }
            print(manifest.backupID)
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup and the chain it builds on onto a file or block device.")

        @OptionGroup var chain: ChainOptions

        @Option(help: "Target file (written sparse, replaced atomically) or block device (must hold the volume).")
        var to: String

        @OptionGroup var logging: LoggingOptions

        func run() throws {
            let logger = try logging.makeLogger(label: "osbackup.image")
            let (chain, result) = try ImageBackupJob.restore(
                repositoryDirectory: self.chain.from, backup: try self.chain.backupID(), to: to,
                parallelism: self.chain.parallelism, logger: logger)
            print(
                "restored \(chain.last!.backupID) (chain of \(result.backups)) to \(to): \(result.volumeSize) bytes, "
                    + "\(result.dataBlocks) data blocks verified and written, \(result.zeroBlocks) zero blocks")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a backup and the chain it builds on without restoring: every file, every block digest.")

        @OptionGroup var chain: ChainOptions

        func run() throws {
            let (chain, result) = try ImageBackupJob.verify(
                repositoryDirectory: self.chain.from, backup: try self.chain.backupID(), parallelism: self.chain.parallelism)
            print(
                "verified \(chain.last!.backupID) (chain of \(result.backups)): \(result.dataBlocks) data blocks "
                    + "(\(result.dataBytes) bytes) match their digests, \(result.zeroBlocks) zero blocks")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the finished backups of a repository, oldest first.")

        @Option(help: "Repository folder.")
        var from: String

        @Flag(help: "Print the volume backups as a JSON array.")
        var json = false

        func run() throws {
            let backups = try BackupRepository(directory: from, create: false).volumeBackups().map(\.record)
            if json {
                try printJSON(backups)
                return
            }
            for manifest in backups {
                print(
                    "\(manifest.backupID)  \(manifest.level.padding(toLength: 12, withPad: " ", startingAt: 0)) "
                        + "\(manifest.createdAt)  \(manifest.volumeName)  \(manifest.dataBytes) bytes  "
                        + "parent \(manifest.parentID ?? "-")")
            }
        }
    }
}

/// The options that pick a backup chain in a repository: `--from`, `--backup`, `--threads`.
struct ChainOptions: ParsableArguments {
    @Option(help: "Repository folder.")
    var from: String

    @Option(help: "Backup id (default: the newest backup of the repository).")
    var backup: String?

    @Option(help: "Reader/verifier threads (default: one per core).")
    var threads: Int?

    /// The parsed `--backup`, nil for the newest.
    func backupID() throws -> BackupID? {
        guard let backup else { return nil }
        guard let id = BackupID(backup) else { throw ValidationError("'\(backup)' is not a backup id (a UUID)") }
        return id
    }

    /// Threads and chunk sizes for reading the chain.
    var parallelism: ParallelIOConfiguration { ParallelIOConfiguration(workerCount: threads) }
}
