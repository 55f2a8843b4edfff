import Foundation
import Logging
import OpenStackClient

/// The ids a real Keystone gave the seed's projects and users, keyed by the emulator's own ids.
struct ExternalIdentityMap: Sendable {
    var projectIDs: [String: String] = [:]
    var userIDs: [String: String] = [:]
    /// Passwords Keystone accepts that differ from the seed's, by the emulator's user id: the service
    /// account's own, when the seed names that user (clouds.yaml then works).
    var passwords: [String: String] = [:]
}

/// Makes the seed's identity exist in an external Keystone: projects, users (with the seed's password),
/// role assignments and application credentials. What is missing is created; what exists is left as it
/// is (a user's password is never changed), and a seed password that an existing user does not accept is
/// reported, since clouds.yaml and the seed's credentials would not work for that user.
struct KeystoneEnrolment {
    let api: KeystoneAdminAPI
    let logger: Logger

    /// Enrols every project, user, role assignment and application credential of `records`.
    func enrol(_ records: CloudRecords) async throws -> ExternalIdentityMap {
        var map = ExternalIdentityMap()
        for project in records.projects {
            if let id = try await api.projectID(named: project.name) {
                map.projectIDs[project.id] = id
            } else {
                map.projectIDs[project.id] = try await api.create(
                    "projects", member: "project",
                    fields: [
                        ("name", .string(project.name)), ("domain_id", .string("default")),
                        ("description", .string("osbackup emulator seed project")),
                    ])
                logger.info("created project in Keystone", metadata: ["osb-project": "\(project.name)"])
            }
        }
        var roleIDs: [String: String] = [:]
        var existingUsers: [UserRecord] = []
        for user in records.users {
            if let id = try await api.userID(named: user.name) {
                map.userIDs[user.id] = id
                existingUsers.append(user)
            } else {
                var fields: [(String, JSON)] = [
                    ("name", .string(user.name)), ("password", .string(user.password)), ("domain_id", .string("default")),
                ]
                if let project = user.defaultProjectID.flatMap({ map.projectIDs[$0] }) {
                    fields.append(("default_project_id", .string(project)))
                }
                map.userIDs[user.id] = try await api.create("users", member: "user", fields: fields)
                logger.info("created user in Keystone", metadata: ["osb-user": "\(user.name)"])
            }
            for (project, names) in user.roles {
                guard let projectID = map.projectIDs[project], let userID = map.userIDs[user.id] else { continue }
                for name in names {
                    if roleIDs[name] == nil { roleIDs[name] = try await api.roleID(named: name) }
                    guard let roleID = roleIDs[name] else {
                        throw EmulatorError.externalKeystone(
                            url: api.identityURL, operation: "GET /v3/roles?name=\(name)",
                            "the seed grants role '\(name)' to user '\(user.name)', but Keystone has no such role")
                    }
                    try await api.grant(roleID: roleID, userID: userID, projectID: projectID)
                }
            }
        }
        var usable: [String: Bool] = [:]
        for var user in existingUsers {
            if let password = serviceAccountPassword(for: user), password != user.password {
                map.passwords[user.id] = password
                user.password = password
                usable[user.id] = true
                logger.info(
                    "the seed's user is the service account: its Keystone password is used instead of the seed's",
                    metadata: ["osb-user": "\(user.name)"])
                continue
            }
            usable[user.id] = await acceptsSeedPassword(user)
        }
        for credential in records.applicationCredentials {
            guard var user = records.users.first(where: { $0.id == credential.userID }), usable[user.id] != false,
                let userID = map.userIDs[user.id],
                let project = records.projects.first(where: { $0.id == credential.projectID })
            else { continue }
            if let password = map.passwords[user.id] { user.password = password }
            try await enrol(credential, user: user, userID: userID, project: project.name)
        }
        return map
    }

    /// The service account's password when `user` is the service account (same name, default domain).
    private func serviceAccountPassword(for user: UserRecord) -> String? {
        guard case .password(let account, let password, _) = api.session.configuration.credentials, account.name == user.name,
            account.domainID == nil || account.domainID == "default", account.domainName == nil || account.domainName == "Default"
        else { return nil }
        return password.reveal()
    }

    /// Whether an existing user accepts the seed's password; says so when not.
    private func acceptsSeedPassword(_ user: UserRecord) async -> Bool {
        let session = userSession(user, project: nil)
        do {
            _ = try await session.token()
            return true
        } catch {
            logger.warning(
                "user exists in Keystone and does not accept the seed's password: its credentials in clouds.yaml and the seed's application credentials of it will not work",
                metadata: ["osb-user": "\(user.name)", "osb-error": "\(error)"])
            return false
        }
    }

    /// Creates an application credential as its user (Keystone lets only the user do that), unless the
    /// user has one of that name (kept as it is, whatever its secret: Keystone never shows it).
    private func enrol(_ credential: ApplicationCredentialRecord, user: UserRecord, userID: String, project: String) async throws {
        let asUser = KeystoneAdminAPI(session: userSession(user, project: project))
        let collection = "users/\(userID)/application_credentials"
        let existing = try await asUser.call("GET", "/\(collection)?name=\(KeystoneAdminAPI.encoded(credential.name))")
        if existing?["application_credentials"]?.array?.isEmpty == false { return }
        _ = try await asUser.create(
            collection, member: "application_credential",
            fields: [
                ("name", .string(credential.name)), ("secret", .string(credential.secret)),
                ("description", .string("osbackup emulator seed credential")),
                ("roles", .array(credential.roles.map { .object([("name", .string($0))]) })),
            ])
        logger.info(
            "created application credential in Keystone", metadata: ["osb-credential": "\(credential.name)", "osb-user": "\(user.name)"])
    }

    private func userSession(_ user: UserRecord, project: String?) -> KeystoneSession {
        let service = api.session.configuration
        let configuration = CloudConfiguration(
            authURL: service.authURL,
            credentials: .password(
                user: UserReference(name: user.name, domainName: "Default"), password: Secret(user.password),
                project: project.map { ProjectReference(name: $0, domainName: "Default") }),
            caCertificatePath: service.caCertificatePath, verifyTLS: service.verifyTLS)
        return KeystoneSession(configuration: configuration, transport: api.session.transport, logger: logger)
    }
}
