public import Logging
public import Foundation

/// An authenticated session with one cloud: it holds the token, renews it before it expires (and once
/// after a 401), picks endpoints from the catalog, and sends calls to Nova and Cinder with the token.
///
/// An actor because the token is the one piece of state every concurrent call shares; concurrent callers
/// that find the token expiring wait for one renewal instead of each authenticating.
public actor KeystoneSession {
    /// The cloud.
    public nonisolated let configuration: CloudConfiguration
    /// The transport every call goes through.
    public nonisolated let transport: OpenStackTransport
    /// Renew the token when it has less than this left (keystoneauth uses 120 s).
    public nonisolated let renewalMargin: TimeInterval
    private let logger: Logger
    private var current: KeystoneToken?
    private var renewal: Task<KeystoneToken, any Error>?

    /// Creates a session; nothing is sent until the first call needs a token.
    public init(
        configuration: CloudConfiguration, transport: OpenStackTransport, renewalMargin: TimeInterval = 120,
        logger: Logger
    ) {
        self.configuration = configuration
        self.transport = transport
        self.renewalMargin = renewalMargin
        self.logger = logger
        if !configuration.verifyTLS {
            logger.warning(
                "TLS certificate verification is off for this cloud",
                metadata: ["osb-cloud": "\(configuration.name ?? configuration.authURL)"])
        }
    }

    /// A token with more than the renewal margin left, authenticating when needed.
    public func token() async throws(OpenStackError) -> KeystoneToken {
        if let current, !current.expires(within: renewalMargin) { return current }
        return try await renew()
    }

    /// Forgets the token, so the next call authenticates again.
    public func invalidate() {
        current = nil
    }

    private func renew() async throws(OpenStackError) -> KeystoneToken {
        if let renewal {
            return try await Self.value(of: renewal)
        }
        let task = Task { [configuration, transport, logger] () async throws -> KeystoneToken in
            try await Self.authenticate(configuration: configuration, transport: transport, logger: logger)
        }
        renewal = task
        defer { renewal = nil }
        let token = try await Self.value(of: task)
        current = token
        logger.info(
            "authenticated",
            metadata: [
                "osb-cloud": "\(configuration.name ?? "-")", "osb-user": "\(token.userName ?? token.userID)",
                "osb-project": "\(token.projectName ?? token.projectID ?? "unscoped")",
                "osb-expires": "\(token.expiresAt)",
            ])
        return token
    }

    private static func value(of task: Task<KeystoneToken, any Error>) async throws(OpenStackError) -> KeystoneToken {
        do {
            return try await task.value
        } catch let error as OpenStackError {
            throw error
        } catch {
            throw .transport(service: "identity", operation: "POST /v3/auth/tokens", underlying: error)
        }
    }

    /// `POST /v3/auth/tokens` with the configured credentials.
    static func authenticate(
        configuration: CloudConfiguration, transport: OpenStackTransport, logger: Logger
    ) async throws(OpenStackError) -> KeystoneToken {
        let body = AuthRequestBody.make(for: configuration.credentials)
        return try await requestToken(body: body, configuration: configuration, transport: transport, logger: logger)
    }

    static func requestToken(
        body: [String: Any], configuration: CloudConfiguration, transport: OpenStackTransport, logger: Logger
    ) async throws(OpenStackError) -> KeystoneToken {
        let url = configuration.identityURL + "/auth/tokens"
        let operation = "POST /v3/auth/tokens"
        let bytes = [UInt8]((try? JSONSerialization.data(withJSONObject: body)) ?? Data())
        // Authentication is safe to repeat: it creates nothing lasting.
        let response = try await transport.send(
            OpenStackRequest(method: "POST", url: url, body: bytes, isIdempotent: true), service: "identity",
            logger: logger)
        guard response.status == 201 || response.status == 200 else {
            throw .http(
                service: "identity", operation: operation, status: response.status, requestID: response.requestID,
                body: response.body)
        }
        return try decodeToken(response, operation: operation)
    }

    static func decodeToken(_ response: OpenStackResponse, operation: String) throws(OpenStackError) -> KeystoneToken {
        guard let subject = response.headers["x-subject-token"], !subject.isEmpty else {
            throw .invalidResponse(
                service: "identity", operation: operation, status: response.status, requestID: response.requestID,
                "no X-Subject-Token header in the answer")
        }
        let body: TokenResponseBody
        do {
            body = try response.decode(TokenResponseBody.self)
        } catch {
            throw .invalidResponse(
                service: "identity", operation: operation, status: response.status, requestID: response.requestID,
                "token body cannot be decoded: \(error)")
        }
        guard let expiresAt = KeystoneTimestamp.parse(body.token.expiresAt) else {
            throw .invalidResponse(
                service: "identity", operation: operation, status: response.status, requestID: response.requestID,
                "expires_at '\(body.token.expiresAt)' is not a timestamp")
        }
        return KeystoneToken(
            value: Secret(subject), expiresAt: expiresAt, issuedAt: body.token.issuedAt.flatMap(KeystoneTimestamp.parse),
            methods: body.token.methods, userID: body.token.user.id, userName: body.token.user.name,
            projectID: body.token.project?.id, projectName: body.token.project?.name,
            roles: (body.token.roles ?? []).compactMap(\.name), catalog: body.token.catalog ?? ServiceCatalog(services: []))
    }

    /// The endpoint URL for `serviceType` (an override, else the catalog's), without a trailing slash.
    public func endpoint(for serviceType: String) async throws(OpenStackError) -> String {
        let official = ServiceCatalog.officialType(for: serviceType)
        if let override = configuration.endpointOverrides[official] { return Self.trimmed(override) }
        let token = try await token()
        guard let url = token.catalog.endpointURL(
            serviceType: official, interfaces: configuration.interfaces, region: configuration.regionName)
        else {
            throw .noEndpoint(
                service: official, interfaces: configuration.interfaces, region: configuration.regionName,
                regions: token.catalog.regions(serviceType: official))
        }
        return Self.trimmed(url)
    }

    private static func trimmed(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// Sends a call to `serviceType` at `path` (relative to the endpoint, or an absolute URL) with the token;
    /// on a 401 it re-authenticates and tries once more. Returns the response whatever its status.
    public func send(
        serviceType: String, method: String, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        isIdempotent: Bool? = nil
    ) async throws(OpenStackError) -> OpenStackResponse {
        let url = path.hasPrefix("http://") || path.hasPrefix("https://") ? path : try await endpoint(for: serviceType) + path
        let official = ServiceCatalog.officialType(for: serviceType)
        var request = OpenStackRequest(
            method: method, url: url, headers: headers, token: try await token().value, body: body,
            isIdempotent: isIdempotent)
        let response = try await transport.send(request, service: official, logger: logger)
        guard response.status == 401 else { return response }
        logger.notice("token refused; authenticating again", metadata: ["osb-service": "\(official)"])
        invalidate()
        request.token = try await token().value
        return try await transport.send(request, service: official, logger: logger)
    }

    /// Validates someone else's token as a service does (keystonemiddleware): `GET /v3/auth/tokens?nocatalog`
    /// with this session's token as `X-Auth-Token` and `subject` as `X-Subject-Token`.
    ///
    /// - Returns: what Keystone says about `subject`, or nil when Keystone does not accept it (404: expired,
    ///   revoked, unknown or malformed).
    /// - Throws: when Keystone cannot be reached, refuses this session's own token twice, or answers
    ///   anything else (403: this session's user may not validate tokens, it needs `admin` or `service`).
    public func validate(_ subject: Secret) async throws(OpenStackError) -> KeystoneToken? {
        let operation = "GET /v3/auth/tokens"
        let response = try await send(
            serviceType: "identity", method: "GET", path: configuration.identityURL + "/auth/tokens?nocatalog",
            headers: [("X-Subject-Token", subject.reveal())])
        switch response.status {
        case 200:
            return try Self.decodeToken(response, operation: operation)
        case 404:
            return nil
        default:
            throw .http(
                service: "identity", operation: operation, status: response.status, requestID: response.requestID,
                body: response.body)
        }
    }

    /// Re-scopes the session to another project with the current token (`token` method).
    ///
    /// The new token keeps the old one's expiry (Keystone's rule) and is renewed by password as usual.
    /// Tokens from application credentials cannot be re-scoped: Keystone refuses, and this says so.
    public func rescope(to project: ProjectReference) async throws(OpenStackError) -> KeystoneToken {
        if case .applicationCredential = configuration.credentials {
            throw .invalidResponse(
                service: "identity", operation: "re-scope", status: nil, requestID: nil,
                "an application credential is bound to its project and cannot be re-scoped; create one per project")
        }
        let old = try await token()
        let body: [String: Any] = [
            "auth": [
                "identity": ["methods": ["token"], "token": ["id": old.value.reveal()]],
                "scope": ["project": AuthRequestBody.project(project)],
            ]
        ]
        let token = try await Self.requestToken(body: body, configuration: configuration, transport: transport, logger: logger)
        current = token
        return token
    }
}

/// Builds the JSON bodies of `POST /v3/auth/tokens`.
enum AuthRequestBody {
    static func make(for credentials: Credentials) -> [String: Any] {
        switch credentials {
        case .password(let user, let password, let project):
            var userObject = self.user(user)
            userObject["password"] = password.reveal()
            var auth: [String: Any] = ["identity": ["methods": ["password"], "password": ["user": userObject]]]
            if let project { auth["scope"] = ["project": self.project(project)] }
            return ["auth": auth]
        case .applicationCredential(let reference, let secret):
            var credential: [String: Any] = ["secret": secret.reveal()]
            switch reference {
            case .id(let id): credential["id"] = id
            case .name(let name, let user):
                credential["name"] = name
                credential["user"] = self.user(user)
            }
            return ["auth": ["identity": ["methods": ["application_credential"], "application_credential": credential]]]
        }
    }

    static func user(_ user: UserReference) -> [String: Any] {
        if let id = user.id { return ["id": id] }
        return ["name": user.name ?? "", "domain": domain(id: user.domainID, name: user.domainName)]
    }

    static func project(_ project: ProjectReference) -> [String: Any] {
        if let id = project.id { return ["id": id] }
        return ["name": project.name ?? "", "domain": domain(id: project.domainID, name: project.domainName)]
    }

    static func domain(id: String?, name: String?) -> [String: Any] {
        if let name { return ["name": name] }
        return ["id": id ?? "default"]
    }
}
