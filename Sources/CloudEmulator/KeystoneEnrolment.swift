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
            guard let user = records.users.first(where: { $0.id == credential.userID }), usable[user.id] != false,
                let userID = map.userIDs[user.id],
                let project = records.projects.first(where: { $0.id == credential.projectID })
            else { continue }
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
    /// user has one of that name.
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

/// Registers the emulator's compute, volumev3 and block-storage endpoints in a region of the external
/// Keystone's catalog, and puts the catalog back at stop.
///
/// Every change is written to a journal (`keystone-catalog.json` in the state directory) before the next
/// one, so a start after a crash first undoes what the crashed run left, and nothing piles up.
struct CatalogRegistration {
    /// What the emulator changed in the catalog.
    struct Journal: Codable, Sendable {
        struct Repointed: Codable, Sendable {
            var id: String
            var originalURL: String
        }

        var createdRegion: String?
        var createdServices: [String] = []
        var createdEndpoints: [String] = []
        var repointedEndpoints: [Repointed] = []

        var isEmpty: Bool {
            createdRegion == nil && createdServices.isEmpty && createdEndpoints.isEmpty && repointedEndpoints.isEmpty
        }
    }

    static let journalName = "keystone-catalog.json"

    let api: KeystoneAdminAPI
    let stateDirectory: String
    let logger: Logger

    private var journalPath: String { stateDirectory + "/" + Self.journalName }

    /// The services and URLs the emulator at `baseURL` offers (Keystone fills in `$(project_id)s`).
    static func services(baseURL: String) -> [(type: String, name: String, url: String)] {
        let volume = baseURL + "/volume/v3/$(project_id)s"
        return [("compute", "nova", baseURL + "/compute/v2.1"), ("volumev3", "cinderv3", volume), ("block-storage", "cinder", volume)]
    }

    /// Points the region's endpoints of each service at the emulator (creating region, services and
    /// endpoints where missing), after undoing what an earlier run left.
    func register(baseURL: String, region: String) async throws {
        try await withdraw()
        var journal = Journal()
        if try await !api.regionExists(region) {
            _ = try await api.create("regions", member: "region", fields: [("id", .string(region))])
            journal.createdRegion = region
            try save(journal)
        }
        for service in Self.services(baseURL: baseURL) {
            let serviceID: String
            if let id = try await api.firstID("services", filters: [("type", service.type)]) {
                serviceID = id
            } else {
                serviceID = try await api.create(
                    "services", member: "service",
                    fields: [("type", .string(service.type)), ("name", .string(service.name)), ("enabled", .bool(true))])
                journal.createdServices.append(serviceID)
                try save(journal)
            }
            let existing = try await api.endpoints(serviceID: serviceID, region: region)
            for interface in ["public", "internal", "admin"] {
                if let endpoint = existing.first(where: { $0.interface == interface }) {
                    guard endpoint.url != service.url else { continue }
                    journal.repointedEndpoints.append(.init(id: endpoint.id, originalURL: endpoint.url))
                    try save(journal)
                    try await api.repoint(endpointID: endpoint.id, to: service.url)
                } else {
                    let id = try await api.create(
                        "endpoints", member: "endpoint",
                        fields: [
                            ("service_id", .string(serviceID)), ("interface", .string(interface)), ("url", .string(service.url)),
                            ("region_id", .string(region)),
                        ])
                    journal.createdEndpoints.append(id)
                    try save(journal)
                }
            }
        }
        logger.info(
            "endpoints registered in Keystone",
            metadata: ["osb-keystone": "\(api.identityURL)", "osb-region": "\(region)", "osb-url": "\(baseURL)"])
    }

    /// Undoes every change of the journal, newest kind first, and removes the journal once all are undone.
    func withdraw() async throws {
        guard var journal = try load(), !journal.isEmpty else {
            try? FileManager.default.removeItem(atPath: journalPath)
            return
        }
        while let id = journal.createdEndpoints.last {
            try await api.delete("endpoints", id: id)
            journal.createdEndpoints.removeLast()
            try save(journal)
        }
        while let endpoint = journal.repointedEndpoints.last {
            try await api.repoint(endpointID: endpoint.id, to: endpoint.originalURL)
            journal.repointedEndpoints.removeLast()
            try save(journal)
        }
        while let id = journal.createdServices.last {
            try await api.delete("services", id: id)
            journal.createdServices.removeLast()
            try save(journal)
        }
        if let region = journal.createdRegion {
            try await api.delete("regions", id: region)
        }
        try? FileManager.default.removeItem(atPath: journalPath)
        logger.info("Keystone catalog put back as the emulator found it", metadata: ["osb-keystone": "\(api.identityURL)"])
    }

    private func load() throws -> Journal? {
        guard FileManager.default.fileExists(atPath: journalPath) else { return nil }
        do {
            return try JSONDecoder().decode(Journal.self, from: Data(contentsOf: URL(fileURLWithPath: journalPath)))
        } catch {
            throw EmulatorError.invalidFile(path: journalPath, what: "Keystone catalog journal", reason: "\(error)")
        }
    }

    private func save(_ journal: Journal) throws {
        do {
            try JSONEncoder().encode(journal).write(to: URL(fileURLWithPath: journalPath), options: .atomic)
        } catch {
            throw EmulatorError.stateWrite(path: journalPath, underlying: error)
        }
    }
}
