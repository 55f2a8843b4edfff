import ArgumentParser
import Foundation
import OpenStackClient

/// `osbackup doctor`: checks the cloud access and the proxy host before the first backup.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check credentials, token, endpoints, microversions and the proxy server; exit 0 only if all pass.")

    @OptionGroup var cloud: CloudOptions

    @Option(help: "Nova server id of this proxy host (else env OSBACKUP_PROXY_SERVER, osbackup_proxy_server in clouds.yaml, or the metadata service).")
    var proxyServer: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = try logging.makeLogger(label: "osbackup.doctor")
        let configuration = try cloud.load()
        let environment = ProcessInfo.processInfo.environment
        let checks = await CloudDoctor.run(
            configuration: configuration,
            proxy: ProxyIdentitySources(
                explicit: proxyServer, environment: environment["OSBACKUP_PROXY_SERVER"],
                metadataURL: environment["OSBACKUP_METADATA_URL"] ?? ProxyIdentitySources.defaultMetadataURL),
            logger: logger)
        for check in checks { print(check) }
        let failed = checks.filter { !$0.passed }.count
        print(failed == 0 ? "all \(checks.count) checks passed" : "\(failed) of \(checks.count) checks failed")
        if failed > 0 { throw ExitCode(ExitStatus.failure) }
    }
}
