import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation

/// `osbackup estimate`: what a backup would read and at which level, without snapshotting anything.
struct EstimateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Estimate a backup: the volumes it would save, their Cinder sizes, the level each would take, and what the last backups stored.",
        discussion: "Nothing is created in the cloud. Give --from REPO to see the last stored sizes and to check that each Incremental's parent is still stored.")

    @OptionGroup var cloud: CloudOptions
    @OptionGroup var proxy: ProxyOptions
    @OptionGroup var targets: SelectionOptions

    @Option(help: "full, incremental or differential.")
    var level: String = "incremental"

    @Option(help: "Repository folder the backup would go to (optional).")
    var from: String?

    @Flag(help: "Print the estimate as JSON on standard output.")
    var json = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let level = try parseLevel(level)
        let selection = try targets.selection()
        let repository = try from.map { try BackupRepository(directory: $0, create: false) }
        let logger = try logging.makeLogger(label: "osbackup.estimate")
        let (cloud, proxy) = (self.cloud, self.proxy)
        let report = try await withCloud(cloud, logger: logger) { configuration, services, transport in
            let proxyID = try await proxy.proxyServerID(configuration: configuration, transport: transport, logger: logger)
            return try await CloudEstimate.run(
                selection: selection, level: level, cloud: services, proxyServerID: proxyID, stateDirectory: proxy.state,
                repository: repository)
        }
        if json { return try printJSON(report) }
        for volume in report.volumes {
            var line = "\(volume.serverName ?? "-")  \(volume.volumeName ?? "")(\(volume.volumeID.prefix(8)))  \(volume.cinderSize) GiB  \(volume.level)"
            if let reason = volume.fallbackReason { line += " (\(reason))" }
            if let stored = volume.lastStoredBytes { line += "  last \(volume.lastLevel ?? "?") stored \(stored) bytes" }
            if let full = volume.lastFullStoredBytes { line += ", last Full \(full) bytes" }
            print(line)
        }
        for skipped in report.skipped { print("skipped \(skipped.target): \(skipped.reason)") }
        print("\(report.volumes.count) volumes, \(report.bytesToRead >> 30) GiB to read")
    }
}
