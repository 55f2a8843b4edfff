/// Everything needed to talk to one cloud: where Keystone is, who we are, which endpoints to use and how
/// to trust TLS. Built by ``CloudConfigurationLoader`` from `clouds.yaml`, `secure.yaml`, `OS_*`
/// variables and command-line flags, in that order of increasing precedence.
public struct CloudConfiguration: Sendable {
    /// The cloud's name in `clouds.yaml`, nil when it came from the environment only.
    public var name: String?
    /// The Keystone URL, e.g. `https://keystone.example:5000/v3` (a URL without `/v3` gets it appended).
    public var authURL: String
    /// How to authenticate.
    public var credentials: Credentials
    /// The region to pick endpoints in (nil: any, the first one listed).
    public var regionName: String?
    /// Interfaces to try in order (`public`, `internal`, `admin`).
    public var interfaces: [EndpointInterface]
    /// A PEM bundle of CA certificates to trust instead of the system's.
    public var caCertificatePath: String?
    /// Whether to verify the TLS certificate of every service (off only when asked, with a warning).
    public var verifyTLS: Bool
    /// Endpoint URLs that replace the catalog's, by official service type (`compute`, `block-storage`).
    public var endpointOverrides: [String: String]
    /// The Nova server id of the proxy host this runs on (`osbackup_proxy_server` in clouds.yaml), if set.
    public var proxyServerID: String?
    /// The folder under which attached volumes appear on the proxy (`osbackup_device_directory`; `/dev`
    /// when unset; the emulator writes its own).
    public var deviceDirectory: String?
    /// Where the values came from, for messages: file paths and/or `environment`.
    public var origin: String

    /// Creates a configuration.
    public init(
        name: String? = nil, authURL: String, credentials: Credentials, regionName: String? = nil,
        interfaces: [EndpointInterface] = [.public], caCertificatePath: String? = nil, verifyTLS: Bool = true,
        endpointOverrides: [String: String] = [:], proxyServerID: String? = nil, deviceDirectory: String? = nil,
        origin: String = "code"
    ) {
        self.name = name
        self.authURL = authURL
        self.credentials = credentials
        self.regionName = regionName
        self.interfaces = interfaces
        self.caCertificatePath = caCertificatePath
        self.verifyTLS = verifyTLS
        self.endpointOverrides = endpointOverrides
        self.proxyServerID = proxyServerID
        self.deviceDirectory = deviceDirectory
        self.origin = origin
    }

    /// The Keystone v3 base URL, without a trailing slash.
    public var identityURL: String {
        var url = authURL
        while url.hasSuffix("/") { url.removeLast() }
        return url.hasSuffix("/v3") ? url : url + "/v3"
    }
}

extension CloudConfiguration {
    /// The same cloud with the token scoped to project `id`, or nil for an application credential, whose
    /// project is fixed (Keystone refuses to re-scope it).
    public func scoped(toProjectID id: String) -> CloudConfiguration? {
        guard case .password(let user, let password, _) = credentials else { return nil }
        var scoped = self
        scoped.credentials = .password(user: user, password: password, project: ProjectReference(id: id))
        return scoped
    }
}

/// How the client proves who it is to Keystone.
public enum Credentials: Sendable, CustomStringConvertible {
    /// A user's password, with a project to scope the token to (nil: the user's default project).
    case password(user: UserReference, password: Secret, project: ProjectReference?)
    /// An application credential, by id or by name and user. Its scope is fixed: its own project.
    case applicationCredential(ApplicationCredentialReference, secret: Secret)

    /// A description without the secret.
    public var description: String {
        switch self {
        case .password(let user, _, let project):
            "password of user \(user)" + (project.map { " scoped to project \($0)" } ?? "")
        case .applicationCredential(let reference, _):
            "application credential \(reference)"
        }
    }
}

/// A user, by id or by name within a domain.
public struct UserReference: Sendable, Hashable, CustomStringConvertible {
    /// The user id (wins over the name).
    public var id: String?
    /// The user name; needs a domain.
    public var name: String?
    /// The domain by id.
    public var domainID: String?
    /// The domain by name.
    public var domainName: String?

    /// Creates a reference.
    public init(id: String? = nil, name: String? = nil, domainID: String? = nil, domainName: String? = nil) {
        self.id = id
        self.name = name
        self.domainID = domainID
        self.domainName = domainName
    }

    public var description: String {
        id ?? "\(name ?? "?")@\(domainName ?? domainID ?? "default")"
    }
}

/// A project, by id or by name within a domain.
public struct ProjectReference: Sendable, Hashable, CustomStringConvertible {
    /// The project id (wins over the name).
    public var id: String?
    /// The project name; needs a domain.
    public var name: String?
    /// The domain by id.
    public var domainID: String?
    /// The domain by name.
    public var domainName: String?

    /// Creates a reference.
    public init(id: String? = nil, name: String? = nil, domainID: String? = nil, domainName: String? = nil) {
        self.id = id
        self.name = name
        self.domainID = domainID
        self.domainName = domainName
    }

    public var description: String {
        id ?? "\(name ?? "?")@\(domainName ?? domainID ?? "default")"
    }
}

/// An application credential, by id or by name and user.
public enum ApplicationCredentialReference: Sendable, Hashable, CustomStringConvertible {
    /// By its id.
    case id(String)
    /// By its name and the user that owns it.
    case name(String, user: UserReference)

    public var description: String {
        switch self {
        case .id(let id): id
        case .name(let name, let user): "\(name) of \(user)"
        }
    }
}

/// A Keystone endpoint interface.
public enum EndpointInterface: String, Sendable, CaseIterable {
    /// The public endpoint.
    case `public`
    /// The internal (cloud-side) endpoint.
    case `internal`
    /// The admin endpoint.
    case admin

    /// Parses `public`, `internal`, `admin` and the v2 spellings `publicURL`, `internalURL`, `adminURL`.
    public init?(name: String) {
        let lowered = name.lowercased()
        let trimmed = lowered.hasSuffix("url") ? String(lowered.dropLast(3)) : lowered
        self.init(rawValue: trimmed)
    }
}
