public import Logging
import Foundation

/// One check of `osbackup doctor`.
public struct DoctorCheck: Sendable, CustomStringConvertible {
    /// What was checked.
    public var name: String
    /// Whether it passed.
    public var passed: Bool
    /// What was found, or what went wrong and what to do.
    public var detail: String

    /// Creates a check result.
    public init(name: String, passed: Bool, detail: String) {
        self.name = name
        self.passed = passed
        self.detail = detail
    }

    /// `ok   name: detail` or `FAIL name: detail`.
    public var description: String { "\(passed ? "ok  " : "FAIL") \(name): \(detail)" }
}

/// Where `osbackup doctor` looks for the proxy host's own Nova server id.
public struct ProxyIdentitySources: Sendable {
    /// `--proxy-server`.
    public var explicit: String?
    /// `OSBACKUP_PROXY_SERVER`.
    public var environment: String?
    /// The metadata service's `meta_data.json` (its `uuid`); `OSBACKUP_METADATA_URL` overrides the URL.
    public var metadataURL: String

    /// The link-local metadata service of OpenStack guests.
    public static let defaultMetadataURL = "http://169.254.169.254/openstack/latest/meta_data.json"

    /// Creates the sources.
    public init(explicit: String? = nil, environment: String? = nil, metadataURL: String = defaultMetadataURL) {
        self.explicit = explicit
        self.environment = environment
        self.metadataURL = metadataURL
    }
}

/// Checks everything a backup needs from a cloud: credentials, token, endpoints and their microversions,
/// and whether the proxy host is a Nova server that volumes can be attached to.
public enum CloudDoctor {
    /// Runs every check; a check that cannot run because an earlier one failed is reported as failed too.
    public static func run(
        configuration: CloudConfiguration, proxy: ProxyIdentitySources, logger: Logger
    ) async -> [DoctorCheck] {
        let transport = OpenStackTransport(
            caCertificatePath: configuration.caCertificatePath, verifyTLS: configuration.verifyTLS,
            retryPolicy: RetryPolicy(maximumAttempts: 2), timeout: .seconds(30))
        let checks = await runChecks(configuration: configuration, proxy: proxy, transport: transport, logger: logger)
        await transport.shutdown()
        return checks
    }

    private static func runChecks(
        configuration: CloudConfiguration, proxy: ProxyIdentitySources, transport: OpenStackTransport, logger: Logger
    ) async -> [DoctorCheck] {
        var checks = [DoctorCheck(name: "configuration", passed: true, detail: "cloud \(configuration.name ?? "-") from \(configuration.origin), \(configuration.credentials)")]
        let session = KeystoneSession(configuration: configuration, transport: transport, logger: logger)

        let token: KeystoneToken
        do {
            token = try await session.token()
            let formatter = ISO8601DateFormatter()
            checks.append(
                DoctorCheck(
                    name: "authentication", passed: true,
                    detail:
                        "user \(token.userName ?? token.userID), project \(token.projectName ?? "-") (\(token.projectID ?? "unscoped")), roles \(token.roles.joined(separator: ",")), token expires \(formatter.string(from: token.expiresAt))"))
        } catch {
            checks.append(DoctorCheck(name: "authentication", passed: false, detail: "\(error)"))
            return checks
        }

        var compute: ComputeClient?
        do {
            let endpoint = try await session.endpoint(for: "compute")
            let client = try await ComputeClient.connect(session: session)
            compute = client
            checks.append(
                DoctorCheck(
                    name: "compute", passed: true,
                    detail: "\(endpoint), microversions \(client.serviceRange.minimum)...\(client.serviceRange.maximum), using \(client.microversion)"))
        } catch {
            checks.append(DoctorCheck(name: "compute", passed: false, detail: "\(error)"))
        }
        do {
            let endpoint = try await session.endpoint(for: "block-storage")
            let client = try await BlockStorageClient.connect(session: session)
            checks.append(
                DoctorCheck(
                    name: "block-storage", passed: true,
                    detail: "\(endpoint), microversions \(client.serviceRange.minimum)...\(client.serviceRange.maximum), using \(client.microversion)"))
        } catch {
            checks.append(DoctorCheck(name: "block-storage", passed: false, detail: "\(error)"))
        }

        let (serverID, source) = await proxyServerID(sources: proxy, configuration: configuration, transport: transport, logger: logger)
        guard let serverID else {
            checks.append(
                DoctorCheck(
                    name: "proxy server", passed: false,
                    detail: "no proxy server id: not given (--proxy-server, OSBACKUP_PROXY_SERVER, osbackup_proxy_server in clouds.yaml) and \(source)"))
            return checks
        }
        guard let compute else {
            checks.append(DoctorCheck(name: "proxy server", passed: false, detail: "\(serverID) (from \(source)) cannot be checked without compute"))
            return checks
        }
        do {
            let server = try await compute.server(id: serverID)
            checks.append(
                DoctorCheck(
                    name: "proxy server", passed: true,
                    detail: "\(server.name) (\(server.id), from \(source)), status \(server.status), AZ \(server.availabilityZone ?? "-"), \(server.attachedVolumes.count) volumes attached"))
        } catch {
            checks.append(DoctorCheck(name: "proxy server", passed: false, detail: "\(serverID) (from \(source)): \(error)"))
        }
        return checks
    }

    /// The proxy's server id and where it came from (or nil and why the metadata service did not tell).
    public static func proxyServerID(
        sources: ProxyIdentitySources, configuration: CloudConfiguration, transport: OpenStackTransport, logger: Logger
    ) async -> (String?, String) {
        if let id = sources.explicit, !id.isEmpty { return (id, "--proxy-server") }
        if let id = sources.environment, !id.isEmpty { return (id, "OSBACKUP_PROXY_SERVER") }
        if let id = configuration.proxyServerID, !id.isEmpty { return (id, "osbackup_proxy_server in \(configuration.origin)") }
        let metadata = OpenStackTransport(retryPolicy: RetryPolicy(maximumAttempts: 1), timeout: .seconds(3))
        let result: (String?, String)
        do {
            let response = try await metadata.send(
                OpenStackRequest(method: "GET", url: sources.metadataURL), service: "metadata", logger: logger)
            struct MetaData: Decodable { var uuid: String }
            if response.status == 200, let uuid = try? response.decode(MetaData.self).uuid {
                result = (uuid, "the metadata service")
            } else {
                result = (nil, "the metadata service at \(sources.metadataURL) answered \(response.status) without a uuid")
            }
        } catch {
            result = (nil, "the metadata service at \(sources.metadataURL) did not answer (\(error.message))")
        }
        await metadata.shutdown()
        return result
    }
}
