public import Logging
public import OpenStackClient

/// Where a job finds the proxy's own Nova server id and its device folder, the same for the CLI and the
/// Bacula backend: what the operator gave (`--proxy-server`, or `proxy_server=` on the Plugin line), then
/// the environment, clouds.yaml, and the metadata service.
public enum ProxyIdentity {
    /// The proxy's server id, or a configuration error naming every source tried and how the operator
    /// names it (`option`, e.g. `--proxy-server` or `proxy_server=`).
    public static func serverID(
        explicit: String?, option: String, environment: [String: String], configuration: CloudConfiguration,
        transport: OpenStackTransport, logger: Logger
    ) async throws(BackupError) -> String {
        let (id, source) = await CloudDoctor.proxyServerID(
            sources: ProxyIdentitySources(
                explicit: explicit, environment: environment["OSBACKUP_PROXY_SERVER"],
                metadataURL: environment["OSBACKUP_METADATA_URL"] ?? ProxyIdentitySources.defaultMetadataURL),
            configuration: configuration, transport: transport, logger: logger)
        guard let id else {
            throw BackupError(
                .configuration, resource: "proxy server",
                "no proxy server id: not given (\(option), OSBACKUP_PROXY_SERVER, osbackup_proxy_server in clouds.yaml) and \(source)",
                hint: "run on a Nova server of the cloud or give \(option); `osbackup doctor` checks it")
        }
        return id
    }

    /// The device folder: what the operator gave, else `OSBACKUP_DEVICE_DIRECTORY`, else clouds.yaml's
    /// `osbackup_device_directory`, else `/dev`.
    public static func devices(
        explicit: String?, environment: [String: String], configuration: CloudConfiguration, timeout: Duration
    ) -> DeviceLocator {
        let folder = explicit ?? environment["OSBACKUP_DEVICE_DIRECTORY"] ?? configuration.deviceDirectory ?? "/dev"
        return DeviceLocator(deviceDirectory: folder, timeout: timeout)
    }
}
