import ArgumentParser
import BackupEngine
import Foundation
import Logging
import OpenStackClient

/// The options every cloud command takes besides the cloud's: the proxy identity, its device folder and
/// the working directory.
struct ProxyOptions: ParsableArguments {
    @Option(help: "YAML file of options, keys spelled as the long options (proxy-server: ID); the command line wins.")
    var config: String?

    @Option(help: "Nova server id of this proxy host (else env OSBACKUP_PROXY_SERVER, osbackup_proxy_server in clouds.yaml, or the metadata service).")
    var proxyServer: String?

    @Option(help: "Where attached volumes appear (else env OSBACKUP_DEVICE_DIRECTORY, osbackup_device_directory in clouds.yaml, else /dev).")
    var deviceDirectory: String?

    @Option(help: "Working directory: hash maps, locks, resource journals.")
    var state: String = "/var/lib/osbackup"

    @Option(help: "Seconds to wait for a volume's device to appear on the proxy.")
    var deviceTimeout: Int = 120

    /// The device folder from the flag, the environment, clouds.yaml, or `/dev`.
    func devices(configuration: CloudConfiguration) -> DeviceLocator {
        ProxyIdentity.devices(
            explicit: deviceDirectory, environment: ProcessInfo.processInfo.environment, configuration: configuration,
            timeout: .seconds(deviceTimeout))
    }

    /// The proxy's server id, or a configuration error naming every source tried.
    func proxyServerID(configuration: CloudConfiguration, transport: OpenStackTransport, logger: Logger) async throws -> String {
        try await ProxyIdentity.serverID(
            explicit: proxyServer, option: "--proxy-server", environment: ProcessInfo.processInfo.environment,
            configuration: configuration, transport: transport, logger: logger)
    }
}

/// Runs `body` with a connected cloud; the transport is shut down on every path. `configure` may change the
/// configuration loaded (a restore scopes it to another project).
func withCloud<Result: Sendable>(
    _ options: CloudOptions, logger: Logger, configure: (CloudConfiguration) throws -> CloudConfiguration = { $0 },
    _ body: @Sendable (CloudConfiguration, CloudServices, OpenStackTransport) async throws -> Result
) async throws -> Result {
    let configuration = try configure(try options.load())
    return try await OpenStackTransport.withTransport(
        caCertificatePath: configuration.caCertificatePath, verifyTLS: configuration.verifyTLS
    ) { transport in
        let session = KeystoneSession(configuration: configuration, transport: transport, logger: logger)
        let cloud = try await CloudServices.connect(session: session)
        return try await body(configuration, cloud, transport)
    }
}

/// Runs `body` as a task that SIGINT and SIGTERM cancel (the job then cleans up and exits 1).
func cancellableOnSignals<Result: Sendable>(_ body: @escaping @Sendable () async throws -> Result) async throws -> Result {
    let task = Task { try await body() }
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let sources = [SIGINT, SIGTERM].map { number in
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            printError("osbackup: signal \(number): cancelling, removing temporary resources")
            task.cancel()
        }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    return try await task.value
}
