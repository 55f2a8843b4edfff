import ArgumentParser
import BackupEngine
import Foundation
import OpenStackClient

/// `osbackup cleanup`: removes the temporary resources of jobs that died.
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove the temporary snapshots, volumes and attachments of jobs that died on this proxy.",
        discussion: """
            Replays the resource journals of dead jobs in --state, then finds resources tagged osbackup_proxy=<this proxy> \
            that no journal knows (a lost working dir) and whose job holds no live lock here. Nothing without osbackup's \
            tags is ever touched.
            """)

    @OptionGroup var cloud: CloudOptions
    @OptionGroup var proxy: ProxyOptions

    @Flag(help: "Only list what would be removed.")
    var dryRun = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = try logging.makeLogger(label: "osbackup.cleanup")
        let (cloud, proxy, dryRun) = (self.cloud, self.proxy, self.dryRun)
        let failures = try await cancellableOnSignals {
            try await withCloud(cloud, logger: logger) { configuration, services, transport in
                let proxyID = try await proxy.proxyServerID(configuration: configuration, transport: transport, logger: logger)
                let sweeper = ResourceSweeper(cloud: services, logger: logger)
                var failures = 0
                for journal in try ResourceJournal.orphans(stateDirectory: proxy.state) {
                    for (_, entry) in journal.pending {
                        print("\(dryRun ? "would remove" : "removing") \(entry.kind) \(entry.id ?? entry.name) (journal of job \(journal.jobID))")
                    }
                    if !dryRun { failures += await sweeper.replay(journal).count }
                    journal.close()
                }
                let leftovers = try await sweeper.taggedLeftovers(proxyServerID: proxyID) { job in
                    ResourceJournal.isLive(stateDirectory: proxy.state, jobID: job)
                }
                for (job, entries) in leftovers.sorted(by: { $0.key < $1.key }) {
                    for entry in entries.reversed() {
                        print("\(dryRun ? "would remove" : "removing") \(entry.kind) \(entry.id ?? entry.name) (tagged by job \(job), no journal)")
                        guard !dryRun else { continue }
                        do {
                            try await sweeper.undo(entry, jobID: job)
                        } catch {
                            printError("osbackup: \(error)")
                            failures += 1
                        }
                    }
                }
                return failures
            }
        }
        if failures > 0 {
            printError("osbackup: \(failures) resources could not be removed; run cleanup again, or ask an admin to reset their status")
            throw ExitCode(ExitStatus.failure)
        }
    }
}
