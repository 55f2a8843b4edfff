import Foundation
import Logging

/// The caller of a Nova or Cinder request, from its token.
struct Caller: Sendable {
    var projectID: String
    var userID: String
    var isAdmin: Bool
}

/// Keystone's error body: `{"error":{"code":401,"message":"...","title":"Unauthorized"}}`.
enum IdentityFault {
    static let authenticationRequired = "The request you have made requires authentication."

    static func response(_ status: Int, _ message: String, identity: Bool = false, headers: [(String, String)] = [])
        -> EmulatorResponse
    {
        let titles = [400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"]
        var members: [(String, JSON)] = [("code", .int(status))]
        if identity { members.append(("identity", .object([]))) }
        members += [("message", .string(message)), ("title", .string(titles[status] ?? "Error"))]
        return EmulatorResponse(
            status: status, headers: headers + [("Vary", "X-Auth-Token")], json: .object([("error", .object(members))]))
    }
}

extension CloudState {
    /// The roles a grant of `names` carries, with the implied ones (admin ⇒ member ⇒ reader).
    static func expandRoles(_ names: [String]) -> [String] {
        var roles: [String] = []
        func add(_ role: String) { if !roles.contains(role) { roles.append(role) } }
        for name in names {
            add(name)
            if name == "admin" { add("member") }
            if name == "admin" || name == "member" { add("reader") }
        }
        return roles
    }

    var keystoneURL: String { baseURL + "/v3" }

    /// keystonemiddleware's `www_authenticate_uri`: the Keystone clients use, without `/v3`.
    private var authenticateURI: String {
        guard let external = configuration.externalKeystone?.identityURL else { return baseURL }
        return external.hasSuffix("/v3") ? String(external.dropLast(3)) : external
    }

    private var unauthorized: ServiceRejection {
        ServiceRejection(
            response: IdentityFault.response(
                401, IdentityFault.authenticationRequired, headers: [("WWW-Authenticate", "Keystone uri=\"\(keystoneURL)\"")]))
    }

    /// Whether a token is still accepted (not revoked, not expired, not cut short by a fault).
    func isUsable(_ token: TokenRecord, now: Date = Date()) -> Bool {
        if token.revoked || token.expiresAt <= now { return false }
        if let validFor = configuration.faults.tokenValidForSeconds,
            token.issuedAt.addingTimeInterval(TimeInterval(validFor)) <= now
        {
            return false
        }
        return true
    }

    /// The caller of a Nova or Cinder request, or the 401 keystonemiddleware would answer (503 when the
    /// external Keystone cannot be asked).
    func caller(_ request: EmulatorRequest) throws(ServiceRejection) -> Caller {
        if configuration.externalKeystone != nil {
            switch request.externalAuthentication {
            case .accepted(let caller): return caller
            case .unavailable:
                throw Self.middlewareRejection(
                    503, "Service Unavailable", "The server is currently unavailable. Please try again at a later time.")
            case .refused, nil: throw serviceUnauthorized
            }
        }
        guard let id = request.header("X-Auth-Token"), let token = records.tokens.first(where: { $0.id == id }),
            isUsable(token), let projectID = token.projectID
        else { throw serviceUnauthorized }
        return Caller(projectID: projectID, userID: token.userID, isAdmin: token.roles.contains("admin"))
    }

    /// keystonemiddleware's 401, naming the Keystone in `WWW-Authenticate`.
    private var serviceUnauthorized: ServiceRejection {
        Self.middlewareRejection(
            401, "Unauthorized", IdentityFault.authenticationRequired,
            headers: [("WWW-Authenticate", "Keystone uri=\"\(authenticateURI)\"")])
    }

    /// An answer of keystonemiddleware itself: `{"error":{"code":…,"title":…,"message":…}}`.
    private static func middlewareRejection(
        _ status: Int, _ title: String, _ message: String, headers: [(String, String)] = []
    ) -> ServiceRejection {
        let body = JSON.object([
            ("error", .object([("code", .int(status)), ("title", .string(title)), ("message", .string(message))]))
        ])
        return ServiceRejection(response: EmulatorResponse(status: status, headers: headers, json: body))
    }

    // MARK: Routes

    func identity(_ request: EmulatorRequest, rest: [String], isRoot: Bool) throws -> EmulatorResponse {
        if let external = configuration.externalKeystone {
            return IdentityFault.response(404, "This emulator uses the Keystone at \(external.identityURL); authenticate there.")
        }
        if isRoot {
            guard request.method == "GET" || request.method == "HEAD" else { return IdentityFault.response(405, "Method Not Allowed") }
            return EmulatorResponse(
                status: 300, headers: [("Location", keystoneURL + "/"), ("Vary", "X-Auth-Token")],
                json: .object([("versions", .object([("values", .array([versionDocument()]))]))]))
        }
        switch (request.method, rest) {
        case ("GET", []), ("HEAD", []):
            return EmulatorResponse(status: 200, headers: [("Vary", "X-Auth-Token")], json: .object([("version", versionDocument())]))
        case ("POST", ["auth", "tokens"]):
            return try issueToken(request)
        case ("GET", ["auth", "tokens"]), ("HEAD", ["auth", "tokens"]):
            return try validateToken(request)
        case ("DELETE", ["auth", "tokens"]):
            _ = try identityCaller(request)
            guard let subject = request.header("X-Subject-Token"),
                let index = records.tokens.firstIndex(where: { $0.id == subject })
            else { return IdentityFault.response(404, "Could not recognize Fernet token") }
            records.tokens[index].revoked = true
            return EmulatorResponse(status: 204, headers: [("Vary", "X-Auth-Token")], json: nil)
        case ("GET", ["auth", "catalog"]):
            let token = try identityCaller(request)
            guard let projectID = token.projectID else {
                return IdentityFault.response(403, "You are not authorized to perform the requested action: identity:get_auth_catalog.")
            }
            return EmulatorResponse(status: 200, headers: [("Vary", "X-Auth-Token")], json: .object([("catalog", catalog(projectID: projectID))]))
        case ("GET", ["auth", "projects"]):
            let token = try identityCaller(request)
            let user = records.users.first { $0.id == token.userID }
            let projects = records.projects.filter { user?.roles[$0.id]?.isEmpty == false }.map(projectJSON)
            return EmulatorResponse(
                status: 200, headers: [("Vary", "X-Auth-Token")],
                json: .object([
                    ("links", .object([("next", .null), ("self", .string(keystoneURL + "/auth/projects")), ("previous", .null)])),
                    ("projects", .array(projects)),
                ]))
        default:
            return IdentityFault.response(404, "The resource could not be found.")
        }
    }

    private func versionDocument() -> JSON {
        .object([
            ("id", .string("v3.14")), ("status", .string("stable")), ("updated", .string("2020-04-07T00:00:00Z")),
            ("links", .array([.object([("rel", .string("self")), ("href", .string(keystoneURL + "/"))])])),
            (
                "media-types",
                .array([
                    .object([
                        ("base", .string("application/json")),
                        ("type", .string("application/vnd.openstack.identity-v3+json")),
                    ])
                ])
            ),
        ])
    }

    private func identityCaller(_ request: EmulatorRequest) throws(ServiceRejection) -> TokenRecord {
        guard let id = request.header("X-Auth-Token"), let token = records.tokens.first(where: { $0.id == id }),
            isUsable(token)
        else { throw unauthorized }
        return token
    }

    private func validateToken(_ request: EmulatorRequest) throws -> EmulatorResponse {
        _ = try identityCaller(request)
        guard let subject = request.header("X-Subject-Token"), let token = records.tokens.first(where: { $0.id == subject })
        else { return IdentityFault.response(404, "Could not recognize Fernet token") }
        let allowExpired = request.queryValue("allow_expired").flatMap { JSON.string($0).bool } ?? false
        if token.revoked || (!isUsable(token) && !allowExpired) {
            return IdentityFault.response(404, "Failed to validate token")
        }
        let headers = [("X-Subject-Token", subject), ("Vary", "X-Auth-Token")]
        if request.method == "HEAD" { return EmulatorResponse(status: 200, headers: headers, json: nil) }
        return EmulatorResponse(
            status: 200, headers: headers,
            json: .object([("token", tokenBody(token, includeCatalog: !request.hasQuery("nocatalog")))]))
    }

    private func issueToken(_ request: EmulatorRequest) throws -> EmulatorResponse {
        func malformed(_ what: String) -> EmulatorResponse {
            IdentityFault.response(
                400,
                "Expecting to find \(what). The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
        }
        guard let auth = request.jsonBody()?["auth"], let identity = auth["identity"] else { return malformed("identity in auth") }
        guard let methods = identity["methods"]?.array?.compactMap(\.string), let method = methods.first else {
            return malformed("methods in identity")
        }
        let now = Date()
        var token: TokenRecord
        switch method {
        case "password":
            guard let password = identity["password"], let userJSON = password["user"] else {
                return malformed("password in identity")
            }
            guard let user = findUser(userJSON), let secret = userJSON["password"]?.string, secret == user.password else {
                throw unauthorized
            }
            token = TokenRecord(
                id: Identifiers.token(), userID: user.id, projectID: nil, methods: ["password"], auditIDs: [Identifiers.auditID()],
                issuedAt: now, expiresAt: now.addingTimeInterval(configuration.tokenLifetime), roles: [])
            try scope(&token, user: user, scope: auth["scope"])
        case "application_credential":
            guard let credentialJSON = identity["application_credential"] else {
                return malformed("application_credential in identity")
            }
            if auth["scope"] != nil {
                return IdentityFault.response(
                    401, "Error authenticating with application credential: Application credentials cannot request a scope.",
                    identity: true, headers: [("WWW-Authenticate", "Keystone uri=\"\(keystoneURL)\"")])
            }
            let credential: ApplicationCredentialRecord?
            if let id = credentialJSON["id"]?.string {
                credential = records.applicationCredentials.first { $0.id == id }
            } else if let name = credentialJSON["name"]?.string, let userJSON = credentialJSON["user"],
                let user = findUser(userJSON)
            {
                credential = records.applicationCredentials.first { $0.name == name && $0.userID == user.id }
            } else {
                credential = nil
            }
            guard let credential, credentialJSON["secret"]?.string == credential.secret else { throw unauthorized }
            token = TokenRecord(
                id: Identifiers.token(), userID: credential.userID, projectID: credential.projectID,
                methods: ["application_credential"], auditIDs: [Identifiers.auditID()], issuedAt: now,
                expiresAt: now.addingTimeInterval(configuration.tokenLifetime),
                applicationCredentialID: credential.id, roles: Self.expandRoles(credential.roles))
        case "token":
            guard let oldID = identity["token"]?["id"]?.string, let old = records.tokens.first(where: { $0.id == oldID }),
                isUsable(old), let user = records.users.first(where: { $0.id == old.userID })
            else { throw unauthorized }
            if old.applicationCredentialID != nil {
                return IdentityFault.response(
                    403,
                    "You are not authorized to perform the requested action: Using a delegated token to create another token is not allowed..")
            }
            token = TokenRecord(
                id: Identifiers.token(), userID: old.userID, projectID: nil,
                methods: old.methods.contains("token") ? old.methods : old.methods + ["token"],
                auditIDs: [Identifiers.auditID(), old.auditIDs[0]], issuedAt: now, expiresAt: old.expiresAt, roles: [])
            try scope(&token, user: user, scope: auth["scope"])
        default:
            throw unauthorized
        }
        records.tokens.removeAll { !isUsable($0, now: now.addingTimeInterval(-86400)) }
        records.tokens.append(token)
        logger.info(
            "token issued", metadata: ["osb-user": "\(token.userID)", "osb-project": "\(token.projectID ?? "-")", "osb-method": "\(method)"])
        return EmulatorResponse(
            status: 201, headers: [("X-Subject-Token", token.id), ("Vary", "X-Auth-Token")],
            json: .object([("token", tokenBody(token, includeCatalog: !request.hasQuery("nocatalog")))]))
    }

    private func findUser(_ json: JSON) -> UserRecord? {
        if let id = json["id"]?.string { return records.users.first { $0.id == id } }
        guard let name = json["name"]?.string else { return nil }
        let domain = json["domain"]
        guard domain?["id"]?.string == "default" || domain?["name"]?.string == "Default" else { return nil }
        return records.users.first { $0.name == name }
    }

    /// Scopes a password or re-scoped token: an explicit project, `"unscoped"`, or the default project.
    private func scope(_ token: inout TokenRecord, user: UserRecord, scope: JSON?) throws(ServiceRejection) {
        var project: ProjectRecord?
        if let scope {
            if scope.string == "unscoped" { return }
            guard let projectJSON = scope["project"] else { throw unauthorized }
            if let id = projectJSON["id"]?.string {
                project = records.projects.first { $0.id == id }
            } else if let name = projectJSON["name"]?.string,
                projectJSON["domain"]?["id"]?.string == "default" || projectJSON["domain"]?["name"]?.string == "Default"
            {
                project = records.projects.first { $0.name == name }
            }
            guard let project, let roles = user.roles[project.id], !roles.isEmpty else { throw unauthorized }
        } else if let defaultID = user.defaultProjectID, user.roles[defaultID]?.isEmpty == false {
            project = records.projects.first { $0.id == defaultID }
        }
        guard let project else { return }
        token.projectID = project.id
        token.roles = Self.expandRoles(user.roles[project.id] ?? [])
    }

    private func projectJSON(_ project: ProjectRecord) -> JSON {
        .object([("domain", .object([("id", .string("default")), ("name", .string("Default"))])), ("id", .string(project.id)), ("name", .string(project.name))])
    }

    /// The token body, shaped like Keystone's.
    func tokenBody(_ token: TokenRecord, includeCatalog: Bool) -> JSON {
        let user = records.users.first { $0.id == token.userID }
        let domain = JSON.object([("id", .string("default")), ("name", .string("Default"))])
        var members: [(String, JSON)] = [
            ("methods", .array(token.methods.map(JSON.string))),
            (
                "user",
                .object([
                    ("domain", domain), ("id", .string(token.userID)), ("name", .string(user?.name ?? "")),
                    ("password_expires_at", .null),
                ])
            ),
            ("audit_ids", .array(token.auditIDs.map(JSON.string))),
            ("expires_at", .string(Identifiers.keystoneTime(token.expiresAt))),
            ("issued_at", .string(Identifiers.keystoneTime(token.issuedAt))),
        ]
        if let projectID = token.projectID, let project = records.projects.first(where: { $0.id == projectID }) {
            members.append(("project", projectJSON(project)))
            members.append(("is_domain", .bool(false)))
            members.append(
                (
                    "roles",
                    .array(token.roles.map { .object([("id", .string(Identifiers.stable("role", $0))), ("name", .string($0))]) })
                ))
            if includeCatalog { members.append(("catalog", catalog(projectID: projectID))) }
            if let credentialID = token.applicationCredentialID,
                let credential = records.applicationCredentials.first(where: { $0.id == credentialID })
            {
                members.append(
                    (
                        "application_credential",
                        .object([("id", .string(credential.id)), ("name", .string(credential.name)), ("restricted", .bool(true))])
                    ))
            }
        }
        return .object(members)
    }

    /// The catalog: identity, compute, and Cinder under both `volumev3` and `block-storage`.
    func catalog(projectID: String) -> JSON {
        func service(_ type: String, _ name: String, _ url: String) -> JSON {
            let endpoints = ["public", "internal", "admin"].map { interface in
                JSON.object([
                    ("id", .string(Identifiers.stable("endpoint", "\(type)/\(interface)"))), ("interface", .string(interface)),
                    ("region_id", .string(region)), ("url", .string(url)), ("region", .string(region)),
                ])
            }
            return .object([
                ("endpoints", .array(endpoints)), ("id", .string(Identifiers.stable("service", type))), ("type", .string(type)),
                ("name", .string(name)),
            ])
        }
        return .array([
            service("identity", "keystone", keystoneURL),
            service("compute", "nova", baseURL + "/compute/v2.1"),
            service("volumev3", "cinderv3", baseURL + "/volume/v3/" + projectID),
            service("block-storage", "cinder", baseURL + "/volume/v3/" + projectID),
        ])
    }
}
