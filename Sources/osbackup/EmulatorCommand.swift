import ArgumentParser
import BlockDelta
import CloudEmulator
import Dispatch
import Foundation
import Logging
import OpenStackClient

/// `osbackup emulator`: the in-repo OpenStack emulator (Keystone + Nova + Cinder subsets) for demos,
/// tests and benchmarks. docs/emulator.md describes what it emulates.
struct EmulatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run the OpenStack emulator, or list what it holds.",
        subcommands: [Serve.self, Inventory.self]
    )

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve Keystone, Nova and Cinder on one port until SIGTERM or SIGINT; prints the auth URL.")

        @Option(help: "State directory (created if missing); the state persists across restarts.")
        var state: String

        @Option(help: "Cloud definition YAML, applied only when the state directory is new (samples/emulator/demo.yaml).")
        var seed: String?

        @Option(help: "Port to listen on (0 = any free port).")
        var port: Int = 0

        @Option(help: "Address to listen on.")
        var host: String = "127.0.0.1"

        @Flag(help: "Back the proxy's devices with real loop devices (root; losetup).")
        var loopDevices = false

        @Option(help: "Where attached volumes appear as disk/by-id/virtio-<id[:20]> (default STATE/dev).")
        var deviceDirectory: String?

        @Option(help: "Write a clouds.yaml (cloud name 'emulator', the seed's admin) to this file.")
        var cloudsYaml: String?

        @Option(help: "Seconds each asynchronous step takes (creating → available, attaching → in-use, ...).")
        var transitionDelay: Double = 0.5

        @Option(help: "Token lifetime in seconds.")
        var tokenLifetime: Double = 3600

        @Option(help: "Unit of volume sizes: gib (as Cinder) or mib (small real volumes for tests).")
        var sizeUnit: String = "gib"

        @Option(help: "Fault plan YAML (error rates per route, latency, stuck states, late devices, short tokens, crash).")
        var faults: String?

        @Option(help: "A fault rule, after those of --faults: method=POST,path=/snapshots,rate=0.5,status=503,retry_after=2,latency_ms=0 (repeatable).")
        var faultRule: [String] = []

        @Option(help: "A status that never ends, e.g. volume:detaching or snapshot:creating (repeatable).")
        var stuck: [String] = []

        @Option(help: "Seed of the fault decisions (overrides the file's).")
        var faultSeed: UInt64?

        @Option(help: "Milliseconds after in-use before the proxy's device appears.")
        var deviceDelayMs: Int?

        @Option(help: "Tokens stop being accepted after this many seconds.")
        var tokenValidForS: Int?

        @Option(help: "The process dies (exit 70) on this request since start, as a crashed API service.")
        var crashAfterRequests: Int?

        @Option(help: "Region of the emulator's endpoints (default: the seed's region, else RegionOne; required with --keystone).")
        var region: String?

        @Option(
            help: ArgumentHelp(
                "Use this real Keystone (URL) instead of the emulator's own.",
                discussion: """
                    The service account (admin role) comes from --keystone-cloud, else from OS_CLOUD or OS_USERNAME, \
                    OS_PASSWORD, OS_PROJECT_NAME... The seed's projects, users and application credentials are created \
                    there when missing, and the emulator's endpoints are registered in --region until it stops.
                    """))
        var keystone: String?

        @Option(help: "Cloud in clouds.yaml (+ secure.yaml) holding the --keystone service account.")
        var keystoneCloud: String?

        @Option(help: "Seconds a token validated by the --keystone Keystone is trusted without asking again (0 = always ask).")
        var tokenCacheSeconds: Double = 30

        @OptionGroup var logging: LoggingOptions

        /// The fault plan of `--faults`, with the fault flags applied over it.
        private func faultPlan() throws -> FaultPlan {
            var plan = try faults.map(FaultPlan.load(path:)) ?? FaultPlan()
            plan.rules += try faultRule.map(FaultRule.init(flag:))
            for entry in stuck {
                let parts = entry.split(separator: ":")
                guard parts.count == 2, ["volume", "snapshot", "server"].contains(parts[0]) else {
                    throw ValidationError("--stuck \(entry): use volume:<status>, snapshot:<status> or server:<status>")
                }
            }
            plan.stuck += stuck
            if let faultSeed { plan.seed = faultSeed }
            if let deviceDelayMs { plan.deviceDelayMilliseconds = deviceDelayMs }
            if let tokenValidForS { plan.tokenValidForSeconds = tokenValidForS }
            if let crashAfterRequests { plan.crashAfterRequests = crashAfterRequests }
            return plan
        }

        /// The external Keystone and its service account, when `--keystone` is given.
        private func externalKeystone() throws -> ExternalKeystone? {
            guard let keystone else {
                if keystoneCloud != nil { throw ValidationError("--keystone-cloud needs --keystone URL") }
                return nil
            }
            guard region != nil else {
                throw ValidationError(
                    "--keystone needs --region NAME: the region the emulator's endpoints are registered in (use one of its own, not a real cloud's)")
            }
            let service = try CloudConfigurationLoader().load(
                overrides: CloudConfigurationOverrides(cloud: keystoneCloud, authURL: keystone))
            return ExternalKeystone(service: service, tokenCacheLifetime: tokenCacheSeconds)
        }

        func run() throws {
            let logger = try logging.makeLogger(label: "osbackup.emulator")
            guard let unit = ["gib": VolumeSizeUnit.gibibyte, "mib": .mebibyte][sizeUnit.lowercased()] else {
                throw ValidationError("--size-unit must be gib or mib")
            }
            if loopDevices && geteuid() != 0 { throw ValidationError("--loop-devices needs root") }
            let configuration = EmulatorConfiguration(
                stateDirectory: state, deviceDirectory: deviceDirectory, host: host, port: port, tokenLifetime: tokenLifetime,
                transitionDelay: transitionDelay, sizeUnit: unit, usesLoopDevices: loopDevices,
                region: region, faults: try faultPlan(),
                externalKeystone: try externalKeystone())
            let seedFile = try seed.map(EmulatorSeed.load(path:))
            let emulator = try CloudEmulator(configuration: configuration, seed: seedFile, logger: logger)
            let cloudsYaml = self.cloudsYaml
            let outcome = BlockingOutcome()
            let task = Task {
                do {
                    try await emulator.run { running in
                        if let cloudsYaml {
                            do {
                                try writeOwnerOnly(running.cloudsYAML(), to: cloudsYaml)  // it holds a password
                            } catch {
                                logger.error("cannot write clouds.yaml", metadata: ["osb-path": "\(cloudsYaml)", "osb-error": "\(error)"])
                            }
                        }
                        // Unbuffered, so a script reading the first line sees it at once.
                        FileHandle.standardOutput.write(Data((running.authURL + "\n").utf8))
                    }
                } catch {
                    outcome.set(error)
                }
                outcome.finish()
            }
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
            let sources = [SIGTERM, SIGINT].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { task.cancel() }
                source.resume()
                return source
            }
            outcome.wait()
            sources.forEach { $0.cancel() }
            if let error = outcome.error { throw error }
        }
    }

    struct Inventory: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every server, volume, snapshot and attachment of an emulator's state (works while it runs).")

        @Option(help: "State directory of the emulator.")
        var state: String

        @Option(help: "Device directory, if serve used --device-directory.")
        var deviceDirectory: String?

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let inventory = try EmulatorInventory.load(stateDirectory: state, deviceDirectory: deviceDirectory)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(inventory), as: UTF8.self))
            } else if !inventory.text.isEmpty {
                print(inventory.text)
            }
        }
    }
}

/// Writes `text` to `path` readable by the owner only from the first byte: a new temporary file made
/// with mode 0600, then renamed over `path`.
private func writeOwnerOnly(_ text: String, to path: String) throws {
    let temporary = path + ".tmp-\(getpid())"
    do {
        let file = try OpenFile.openForWriting(temporary, create: true, exclusive: true, permissions: 0o600)
        try Array(text.utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.close()
        guard rename(temporary, path) == 0 else { throw BlockDeltaError.io("rename to \(path)", path: temporary, errno: errno) }
    } catch {
        unlink(temporary)
        throw error
    }
}

/// Hands an async task's end (and error) to the blocking caller.
private final class BlockingOutcome: @unchecked Sendable {
    // Invariant: `error` is written before `finish()` signals and read only after `wait()` returns.
    private let done = DispatchSemaphore(value: 0)
    private(set) var error: (any Error)?

    func set(_ error: any Error) { self.error = error }
    func finish() { done.signal() }
    func wait() { done.wait() }
}
