import Foundation

extension CloudState {
    /// The records as they are now (for enrolment in an external Keystone).
    func snapshot() -> CloudRecords { records }

    /// Takes on the project and user ids of an external Keystone: every record that names a project or
    /// a user is rewritten, so the data is scoped by the ids in that Keystone's tokens. Idempotent: a
    /// second start against the same Keystone maps every id to itself. A password Keystone accepts instead
    /// of the seed's replaces it (for clouds.yaml). The emulator's own tokens are dropped.
    func adopt(_ map: ExternalIdentityMap) {
        func project(_ id: String) -> String { map.projectIDs[id] ?? id }
        func user(_ id: String) -> String { map.userIDs[id] ?? id }
        for index in records.projects.indices { records.projects[index].id = project(records.projects[index].id) }
        for index in records.users.indices {
            if let password = map.passwords[records.users[index].id] { records.users[index].password = password }
            records.users[index].id = user(records.users[index].id)
            records.users[index].defaultProjectID = records.users[index].defaultProjectID.map(project)
            records.users[index].roles = Dictionary(
                records.users[index].roles.map { (project($0.key), $0.value) }, uniquingKeysWith: { $0 + $1 })
        }
        for index in records.applicationCredentials.indices {
            records.applicationCredentials[index].projectID = project(records.applicationCredentials[index].projectID)
            records.applicationCredentials[index].userID = user(records.applicationCredentials[index].userID)
        }
        for index in records.servers.indices {
            records.servers[index].projectID = project(records.servers[index].projectID)
            records.servers[index].userID = user(records.servers[index].userID)
        }
        for index in records.volumes.indices {
            records.volumes[index].projectID = project(records.volumes[index].projectID)
            records.volumes[index].userID = user(records.volumes[index].userID)
        }
        for index in records.snapshots.indices {
            records.snapshots[index].projectID = project(records.snapshots[index].projectID)
            records.snapshots[index].userID = user(records.snapshots[index].userID)
        }
        records.tokens = []
        save()
    }
}
