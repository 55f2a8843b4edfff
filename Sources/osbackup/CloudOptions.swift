import ArgumentParser
import OpenStackClient

/// The options that choose and override the cloud: the same names as the `openstack` client's.
struct CloudOptions: ParsableArguments {
    @Option(name: .customLong("os-cloud"), help: "Cloud name in clouds.yaml (env OS_CLOUD).")
    var cloud: String?

    @Option(name: .customLong("os-auth-url"), help: "Keystone URL (env OS_AUTH_URL).")
    var authURL: String?

    @Option(name: .customLong("os-region-name"), help: "Region (env OS_REGION_NAME).")
    var regionName: String?

    @Option(name: .customLong("os-interface"), help: "Endpoint interface: public, internal or admin (env OS_INTERFACE).")
    var interface: String?

    @Option(name: .customLong("os-cacert"), help: "CA bundle to trust for this cloud (env OS_CACERT).")
    var caCertificate: String?

    @Flag(help: "Do not verify TLS certificates (lab clouds only; env OS_INSECURE).")
    var insecure = false

    /// The configuration from clouds.yaml, secure.yaml, OS_* and these flags.
    func load() throws(ConfigurationError) -> CloudConfiguration {
        try CloudConfigurationLoader().load(
            overrides: CloudConfigurationOverrides(
                cloud: cloud, authURL: authURL, regionName: regionName, interface: interface,
                caCertificatePath: caCertificate, insecure: insecure ? true : nil))
    }
}
