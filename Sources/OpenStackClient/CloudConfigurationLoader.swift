public import Foundation
import Yams

/// Explicit settings from the command line; each one, when set, wins over files and environment.
public struct CloudConfigurationOverrides: Sendable {
    /// `--os-cloud`: the cloud to pick in `clouds.yaml` (else `OS_CLOUD`).
    public var cloud: String?
    /// `--os-auth-url`.
    public var authURL: String?
    /// `--os-region-name`.
    public var regionName: String?
    /// `--os-interface`.
    public var interface: String?
    /// `--os-cacert`.
    public var caCertificatePath: String?
    /// `--insecure`: do not verify TLS certificates.
    public var insecure: Bool?

    /// Creates overrides; every field defaults to "not given".
    public init(
        cloud: String? = nil, authURL: String? = nil, regionName: String? = nil, interface: String? = nil,
        caCertificatePath: String? = nil, insecure: Bool? = nil
    ) {
        self.cloud = cloud
        self.authURL = authURL
        self.regionName = regionName
        self.interface = interface
        self.caCertificatePath = caCertificatePath
        self.insecure = insecure
    }
}

/// Reads the configuration the way OpenStack users already keep it.
///
/// 1. `clouds.yaml` from `OS_CLIENT_CONFIG_FILE`, else the first of `./clouds.yaml`,
///    `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`; the cloud named by `--os-cloud` or
///    `OS_CLOUD`, with the same cloud of `secure.yaml` (same folders) merged over it.
/// 2. `OS_*` variables over that (`OS_AUTH_URL`, `OS_USERNAME`, `OS_USER_ID`, `OS_PASSWORD`,
///    `OS_PROJECT_NAME`, `OS_PROJECT_ID`, `OS_USER_DOMAIN_NAME`, `OS_USER_DOMAIN_ID`,
///    `OS_PROJECT_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_ID`, `OS_APPLICATION_CREDENTIAL_ID`,
///    `OS_APPLICATION_CREDENTIAL_NAME`, `OS_APPLICATION_CREDENTIAL_SECRET`, `OS_AUTH_TYPE`,
///    `OS_REGION_NAME`, `OS_INTERFACE`, `OS_CACERT`, `OS_INSECURE`).
/// 3. Command-line overrides over everything.
public struct CloudConfigurationLoader: Sendable {
    /// The process environment to read `OS_*` from.
    public var environment: [String: String]
    /// Folders searched for `clouds.yaml` and `secure.yaml`, in order.
    public var searchDirectories: [String]

    /// Creates a loader over the process environment and the usual folders.
    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment, searchDirectories: [String]? = nil
    ) {
        self.environment = environment
        let home = environment["HOME"] ?? NSHomeDirectory()
        self.searchDirectories = searchDirectories ?? [".", "\(home)/.config/openstack", "/etc/openstack"]
    }

    /// Builds the configuration of the chosen cloud.
    public func load(overrides: CloudConfigurationOverrides = .init()) throws(ConfigurationError) -> CloudConfiguration {
        var settings = CloudSettings()
        var origins: [String] = []
        if let cloud = overrides.cloud ?? environment["OS_CLOUD"], !cloud.isEmpty {
            guard let cloudsFile = findFile("clouds.yaml", explicit: environment["OS_CLIENT_CONFIG_FILE"]) else {
                throw ConfigurationError(
                    key: "OS_CLOUD", source: "environment", "cloud '\(cloud)' asked for but no clouds.yaml found",
                    hint: "looked in \(searchDirectories.joined(separator: ", ")); set OS_CLIENT_CONFIG_FILE")
            }
            try settings.merge(cloud: cloud, file: cloudsFile, required: true)
            origins.append(cloudsFile)
            if let secureFile = findFile("secure.yaml", explicit: environment["OS_CLIENT_SECURE_FILE"]) {
                try settings.merge(cloud: cloud, file: secureFile, required: false)
                origins.append(secureFile)
            }
            settings.name = cloud
        }
        if settings.mergeEnvironment(environment) { origins.append("environment") }
        settings.apply(overrides)
        return try settings.build(origin: origins.isEmpty ? "command line" : origins.joined(separator: " + "))
    }

    private func findFile(_ name: String, explicit: String?) -> String? {
        if let explicit, !explicit.isEmpty { return explicit }
        return searchDirectories.map { "\($0)/\(name)" }.first { FileManager.default.isReadableFile(atPath: $0) }
    }
}

/// The flat key/value settings of one cloud while they are being merged.
struct CloudSettings {
    var name: String?
    /// Auth keys (`auth_url`, `username`, ...), each with where it came from.
    var auth: [String: (value: String, source: String)] = [:]
    /// Top-level keys (`region_name`, `interface`, `cacert`, `verify`, `auth_type`, `*_endpoint_override`).
    var options: [String: (value: String, source: String)] = [:]

    mutating func merge(cloud: String, file: String, required: Bool) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError(source: file, "cannot be read: \(error.localizedDescription)")
        }
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError(source: file, "is not valid YAML: \(error)")
        }
        guard let root = document as? [String: Any], let clouds = root["clouds"] as? [String: Any] else {
            if !required { return }
            throw ConfigurationError(key: "clouds", source: file, "has no 'clouds' mapping")
        }
        guard let entry = clouds[cloud] else {
            if !required { return }
            throw ConfigurationError(
                key: "clouds.\(cloud)", source: file, "no cloud named '\(cloud)'",
                hint: "clouds here: \(clouds.keys.sorted().joined(separator: ", "))")
        }
        guard let cloudMap = entry as? [String: Any] else {
            throw ConfigurationError(key: "clouds.\(cloud)", source: file, "must be a mapping")
        }
        for (key, value) in cloudMap {
            if key == "auth" {
                guard let authMap = value as? [String: Any] else {
                    throw ConfigurationError(key: "clouds.\(cloud).auth", source: file, "must be a mapping")
                }
                for (authKey, authValue) in authMap {
                    guard let text = scalar(authValue) else {
                        throw ConfigurationError(key: "clouds.\(cloud).auth.\(authKey)", source: file, "must be a string")
                    }
                    auth[authKey] = (text, "\(file): clouds.\(cloud).auth.\(authKey)")
                }
            } else if let text = scalar(value) {
                options[key] = (text, "\(file): clouds.\(cloud).\(key)")
            }
        }
    }

    private func scalar(_ value: Any) -> String? {
        switch value {
        case let text as String: text
        case let flag as Bool: flag ? "true" : "false"
        case let number as Int: String(number)
        case let number as Double: String(number)
        default: nil
        }
    }

    /// Overlays `OS_*` variables; returns whether any was set.
    mutating func mergeEnvironment(_ environment: [String: String]) -> Bool {
        let authVariables = [
            "OS_AUTH_URL": "auth_url", "OS_USERNAME": "username", "OS_USER_ID": "user_id", "OS_PASSWORD": "password",
            "OS_PROJECT_NAME": "project_name", "OS_PROJECT_ID": "project_id", "OS_TENANT_NAME": "project_name",
            "OS_TENANT_ID": "project_id", "OS_USER_DOMAIN_NAME": "user_domain_name",
            "OS_USER_DOMAIN_ID": "user_domain_id", "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
            "OS_PROJECT_DOMAIN_ID": "project_domain_id", "OS_DOMAIN_NAME": "domain_name", "OS_DOMAIN_ID": "domain_id",
            "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
            "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
            "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
        ]
        let optionVariables = [
            "OS_AUTH_TYPE": "auth_type", "OS_REGION_NAME": "region_name", "OS_INTERFACE": "interface",
            "OS_ENDPOINT_TYPE": "interface", "OS_CACERT": "cacert",
        ]
        var used = false
        // Legacy names first, so that the current name wins when both are set.
        for (variable, key) in authVariables.sorted(by: { $0.key.contains("TENANT") && !$1.key.contains("TENANT") })
        where !(environment[variable] ?? "").isEmpty {
            auth[key] = (environment[variable]!, variable)
            used = true
        }
        for (variable, key) in optionVariables.sorted(by: { $0.key == "OS_ENDPOINT_TYPE" && $1.key != "OS_ENDPOINT_TYPE" })
        where !(environment[variable] ?? "").isEmpty {
            options[key] = (environment[variable]!, variable)
            used = true
        }
        if let insecure = environment["OS_INSECURE"], !insecure.isEmpty {
            options["verify"] = (["1", "true", "yes"].contains(insecure.lowercased()) ? "false" : "true", "OS_INSECURE")
            used = true
        }
        return used
    }

    mutating func apply(_ overrides: CloudConfigurationOverrides) {
        if let url = overrides.authURL { auth["auth_url"] = (url, "--os-auth-url") }
        if let region = overrides.regionName { options["region_name"] = (region, "--os-region-name") }
        if let interface = overrides.interface { options["interface"] = (interface, "--os-interface") }
        if let path = overrides.caCertificatePath { options["cacert"] = (path, "--os-cacert") }
        if let insecure = overrides.insecure, insecure { options["verify"] = ("false", "--insecure") }
    }

    func build(origin: String) throws(ConfigurationError) -> CloudConfiguration {
        guard let authURL = auth["auth_url"] else {
            throw ConfigurationError(
                key: "auth_url", source: origin, "no Keystone URL configured",
                hint: "set auth.auth_url in clouds.yaml, OS_AUTH_URL, or --os-auth-url")
        }
        guard authURL.value.hasPrefix("http://") || authURL.value.hasPrefix("https://"), URL(string: authURL.value) != nil
        else {
            throw ConfigurationError(key: authURL.source, "'\(authURL.value)' is not an http(s) URL")
        }
        let credentials = try buildCredentials()
        var interfaces: [EndpointInterface] = [.public]
        if let interface = options["interface"] {
            guard let parsed = EndpointInterface(name: interface.value) else {
                throw ConfigurationError(
                    key: interface.source, "unknown interface '\(interface.value)'", hint: "use public, internal or admin")
            }
            interfaces = [parsed]
        }
        var verifyTLS = true
        if let verify = options["verify"] {
            switch verify.value.lowercased() {
            case "true", "yes", "1": verifyTLS = true
            case "false", "no", "0": verifyTLS = false
            default: throw ConfigurationError(key: verify.source, "verify must be true or false, not '\(verify.value)'")
            }
        }
        if let cacert = options["cacert"], !FileManager.default.isReadableFile(atPath: cacert.value) {
            throw ConfigurationError(key: cacert.source, "CA bundle '\(cacert.value)' cannot be read")
        }
        var overrides: [String: String] = [:]
        for (key, value) in options where key.hasSuffix("_endpoint_override") {
            let prefix = String(key.dropLast("_endpoint_override".count)).replacingOccurrences(of: "_", with: "-")
            let serviceType = ServiceCatalog.officialType(for: prefix)
            overrides[serviceType] = value.value
        }
        return CloudConfiguration(
            name: name, authURL: authURL.value, credentials: credentials, regionName: options["region_name"]?.value,
            interfaces: interfaces, caCertificatePath: options["cacert"]?.value, verifyTLS: verifyTLS,
            endpointOverrides: overrides, proxyServerID: options["osbackup_proxy_server"]?.value,
            deviceDirectory: options["osbackup_device_directory"]?.value, origin: origin)
    }

    private func value(_ key: String) -> String? {
        auth[key].map(\.value).flatMap { $0.isEmpty ? nil : $0 }
    }

    private func buildCredentials() throws(ConfigurationError) -> Credentials {
        let authType = options["auth_type"]?.value.lowercased()
        let wantsApplicationCredential =
            authType.map { $0.contains("applicationcredential") || $0 == "application_credential" }
            ?? (value("application_credential_id") != nil || value("application_credential_name") != nil)
        let userDomainID = value("user_domain_id") ?? value("domain_id")
        let userDomainName = value("user_domain_name") ?? value("domain_name")
        let user = UserReference(
            id: value("user_id"), name: value("username"),
            domainID: userDomainID ?? (userDomainName == nil ? "default" : nil), domainName: userDomainName)
        if wantsApplicationCredential {
            guard let secret = value("application_credential_secret") else {
                throw ConfigurationError(
                    key: "application_credential_secret", source: auth["application_credential_id"]?.source,
                    "an application credential needs its secret",
                    hint: "set auth.application_credential_secret (secure.yaml) or OS_APPLICATION_CREDENTIAL_SECRET")
            }
            if let id = value("application_credential_id") {
                return .applicationCredential(.id(id), secret: Secret(secret))
            }
            guard let name = value("application_credential_name"), user.id != nil || user.name != nil else {
                throw ConfigurationError(
                    key: "application_credential_id", "an application credential needs its id, or its name and user",
                    hint: "set application_credential_id, or application_credential_name with username or user_id")
            }
            return .applicationCredential(.name(name, user: user), secret: Secret(secret))
        }
        if let authType, !["password", "v3password"].contains(authType) {
            throw ConfigurationError(
                key: options["auth_type"]!.source, "auth type '\(authType)' is not supported",
                hint: "use password or v3applicationcredential")
        }
        guard user.id != nil || user.name != nil else {
            throw ConfigurationError(
                key: "username", "no user configured", hint: "set auth.username (or user_id), or OS_USERNAME")
        }
        guard let password = value("password") else {
            throw ConfigurationError(
                key: "password", "no password configured for user \(user)",
                hint: "set auth.password in secure.yaml or OS_PASSWORD")
        }
        var project: ProjectReference?
        if value("project_id") != nil || value("project_name") != nil {
            let domainID = value("project_domain_id") ?? value("domain_id")
            let domainName = value("project_domain_name") ?? value("domain_name")
            project = ProjectReference(
                id: value("project_id"), name: value("project_name"),
                domainID: domainID ?? (domainName == nil ? "default" : nil), domainName: domainName)
        }
        return .password(user: user, password: Secret(password), project: project)
    }
}
