import ArgumentParser
import BackupEngine
import Foundation
import OpenStackClient

/// `osbackup list`: what a repository holds, and what the cloud offers to back up.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the jobs of a repository, or the servers and volumes of the cloud.",
        subcommands: [Jobs.self, Servers.self, Volumes.self])

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

    struct Servers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The servers in scope, with their Cinder volumes and whether their root disk is an image (not saved).")

        @OptionGroup var cloud: CloudOptions

        @Flag(help: "Servers of every project (admin role).")
        var allProjects = false

        @Flag(help: "Print the servers as JSON (Nova's fields osbackup reads).")
        var json = false

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = try logging.makeLogger(label: "osbackup.list")
            let (cloud, allProjects) = (self.cloud, self.allProjects)
            let servers = try await withCloud(cloud, logger: logger) { _, services, _ in
                try await services.compute.servers(ServerFilter(allProjects: allProjects))
            }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
            if json { return try printJSON(servers) }
            for server in servers {
                let root = (server.imageID ?? "").isEmpty ? "boot from volume" : "image-backed root (not saved)"
                print("\(server.id)  \(server.name)  \(server.status)  project \(server.projectID ?? "-")  \(server.attachedVolumes.count) volumes  \(root)")
            }
        }
    }

    struct Volumes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The Cinder volumes in scope, with their size and the servers they are attached to.")

        @OptionGroup var cloud: CloudOptions

        @Flag(help: "Volumes of every project (admin role).")
        var allProjects = false

        @Flag(help: "Print the volumes as JSON (Cinder's fields osbackup reads).")
        var json = false

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = try logging.makeLogger(label: "osbackup.list")
            let (cloud, allProjects) = (self.cloud, self.allProjects)
            let volumes = try await withCloud(cloud, logger: logger) { _, services, _ in
                try await services.blockStorage.volumes(VolumeFilter(allProjects: allProjects))
            }.sorted { ($0.name ?? "", $0.id) < ($1.name ?? "", $1.id) }
            if json { return try printJSON(volumes) }
            for volume in volumes {
                let attached = volume.attachments.map(\.serverID).joined(separator: ",")
                let temporary = (volume.name ?? "").hasPrefix(TargetResolver.temporaryPrefix) && volume.metadata?[CloudTags.job] != nil
                print(
                    "\(volume.id)  \(volume.name ?? "-")  \(volume.size) GiB  \(volume.status)  "
                        + (attached.isEmpty ? "attached to no server" : "attached to \(attached)") + (temporary ? "  (osbackup temporary)" : ""))
            }
        }
    }
}
