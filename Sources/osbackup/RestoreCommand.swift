import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation
import OpenStackClient

/// `osbackup restore`: a job's volumes back from a repository, to raw images or into the cloud.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore the volumes of a job (and the chains they build on) from a repository.",
        discussion: """
            --to-dir DIR writes each volume as a sparse raw image <name>_<volume uuid>.raw under its namespace path, with the .conf beside it.
            --to-cloud writes each volume onto a new Cinder volume (the .conf's size, type and zone) attached to this proxy;
            with --new-server a server is booted from them as the .conf describes it, and its id is printed last.
            --in-place --force writes each volume back onto the original, which must be attached to nothing.
            """)

    @Option(help: "Repository folder, tar file of `backup --to -` (compressed or not), or - for standard input (repeatable: streams in chain order, the Full first).")
    var from: [String]

    @Option(help: "Job id (default: the newest job).")
    var job: String?

    @Option(help: "Server whose volumes to restore, by UUID or by the name the backup recorded (repeatable; default: every volume of the job).")
    var server: [String] = []

    @Option(help: "Volume UUID to restore (repeatable).")
    var volume: [String] = []

    @Option(help: "Folder to write raw images and .conf files into.")
    var toDir: String?

    @Flag(help: "Restore onto new Cinder volumes.")
    var toCloud = false

    @Flag(help: "With --to-cloud: boot a new server from the restored volumes, as the .conf describes the original.")
    var newServer = false

    @Flag(help: "Restore onto the original volumes (they must exist and be attached to nothing); needs --force.")
    var inPlace = false

    @Flag(help: "Confirm that --in-place overwrites the original volumes.")
    var force = false

    @Option(help: "Put before the original name of each new volume and server.")
    var namePrefix: String = "restored-"

    @Option(help: "Volume type of the new volumes (default: the original's).")
    var volumeType: String?

    @Option(help: "Availability zone of the new volumes and server (default: the original's).")
    var availabilityZone: String?

    @Option(help: "Project to restore into (default: the original server's project; another than the credentials' needs a password login with a role there).")
    var project: String?

    @Option(help: "With --new-server: its name (default: the name prefix and the original name).")
    var name: String?

    @Option(help: "With --new-server: flavor id or name (default: the original's).")
    var flavor: String?

    @Option(help: "With --new-server: network id (repeatable; default: the networks the server had).")
    var network: [String] = []

    @Option(help: "With --new-server: key pair name (default: the original's).")
    var keyName: String?

    @Option(help: "Volumes written at once.")
    var parallel: Int = 2

    @Flag(help: "Print the restore report as JSON on standard output.")
    var json = false

    @OptionGroup var cloud: CloudOptions
    @OptionGroup var proxy: ProxyOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        let targets = [toDir != nil, toCloud, inPlace].filter { $0 }.count
        guard targets == 1 else { throw ValidationError("give exactly one of --to-dir DIR, --to-cloud, --in-place --force") }
        if newServer && !toCloud { throw ValidationError("--new-server goes with --to-cloud") }
        if inPlace && !force { throw ValidationError("--in-place overwrites the original volumes: add --force to confirm") }
        if !newServer && (name != nil || flavor != nil || !network.isEmpty || keyName != nil) {
            throw ValidationError("--name, --flavor, --network and --key-name go with --new-server")
        }
        if namePrefix.hasPrefix(TargetResolver.temporaryPrefix) {
            throw ValidationError("--name-prefix must not start with '\(TargetResolver.temporaryPrefix)': osbackup's temporary resources use it")
        }
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
    }

    func run() async throws {
        var jobID: BackupID?
        if let job {
            guard let id = BackupID(job) else { throw ValidationError("'\(job)' is not a job id (a UUID)") }
            jobID = id
        }
        let logger = try logging.makeLogger(label: "osbackup.restore")
        // Tar streams are read into a spool repository: beside the images, or in the working directory.
        let source = try RestoreSource.open(from, job: jobID, spoolingInto: toDir ?? proxy.state, logger: logger)
        defer { source.remove() }
        if let toDir {
            let restored = try RestoreToDirectory.run(
                repository: source.repository, jobID: source.jobID, servers: server, volumes: volume, target: toDir, logger: logger)
            if json { return try printJSON(restored) }
            for volume in restored {
                print("restored volume \(volume.volumeID) (chain of \(volume.chainLength), \(volume.bytes) bytes) to \(volume.path)")
            }
            return
        }
        let plan = try RestorePlan.make(repository: source.repository, jobID: source.jobID, servers: server, volumes: volume)
        let target: CloudRestoreRequest.Target =
            inPlace ? .inPlace
            : newServer
                ? .newServer(.init(name: name, flavor: flavor, networks: network, availabilityZone: availabilityZone, keyName: keyName))
                : .newVolumes
        let wantedProject = try RestoreProject.wanted(explicit: project, plan: plan, option: "--project")
        let (cloud, proxy, parallel, namePrefix, volumeType, availabilityZone) =
            (self.cloud, self.proxy, self.parallel, self.namePrefix, self.volumeType, self.availabilityZone)
        let report = try await cancellableOnSignals {
            try await withCloud(cloud, logger: logger, configure: { RestoreProject.scoping($0, to: wantedProject) }) {
                configuration, services, transport in
                try RestoreProject.requireScope(services, project: wantedProject, option: "--project ")
                let proxyID = try await proxy.proxyServerID(configuration: configuration, transport: transport, logger: logger)
                return try await CloudRestoreJob.run(
                    CloudRestoreRequest(
                        target: target, namePrefix: namePrefix, volumeType: volumeType, availabilityZone: availabilityZone,
                        stateDirectory: proxy.state, proxyServerID: proxyID, devices: proxy.devices(configuration: configuration),
                        parallel: parallel),
                    plan: plan, cloud: services, logger: logger)
            }
        }
        if json { return try printJSON(report) }
        for volume in report.volumes {
            printError("restored volume \(volume.originalVolumeID) (chain of \(volume.chainLength)) onto volume \(volume.volumeID) \(volume.name ?? "")")
        }
        for (original, id) in report.servers.sorted(by: { $0.key < $1.key }) {
            printError("new server \(id) from the backup of server \(original)")
        }
        // The id of what was made, last on standard output: the new server's, else each volume's.
        if !report.servers.isEmpty {
            report.servers.values.sorted().forEach { print($0) }
        } else {
            report.volumes.forEach { print($0.volumeID) }
        }
    }

}
